"""``pingthings demo``: a small synthetic substation served by the embedded server and explored
through the public client API.

:func:`pingthings.demo.run.run_demo` is the entry point; :mod:`pingthings.demo.substation`
describes the streams and :mod:`pingthings.demo.signals` synthesises their values.
"""
