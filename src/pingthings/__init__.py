"""pingthings: a BTrDB / PredictiveGrid client (``pingthings.timeseries``) and an embeddable server."""

__version__ = "0.1.0"
