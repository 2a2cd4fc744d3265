"""The stored block encodings, shared by the engine (which writes and reads them) and the client
(which decodes the blocks a RawBlocks reply carries as they are stored).

* :mod:`.codec`: block framing and LZ4;
* :mod:`.leaf_codec`: leaf and leaf-group blocks (times and values);
* :mod:`.time_grid`, :mod:`.value_transform`: the grid-coded times and scaled-integer values of a leaf;
* :mod:`.pco_leaf`: leaf bodies compressed by pcodec (format 5, what the engine writes now);
* :mod:`.checked`: structural checks of a block received from elsewhere, before it is decoded.
"""

#: Version of the point-block encodings. A reader of format ``f`` reads every block of formats
#: ``1..f`` (format 2 added leaf groups, 3 scaled-integer values, 4 grid-coded times, 5 pco leaf
#: bodies); the engine stamps its database with it, and a RawBlocks request lists the formats its
#: client decodes.
BLOCK_FORMAT = 5
