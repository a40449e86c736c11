//! Text on the wire: character sets, encoding choice, segmentation, reassembly, receipts.
