"""The artifact folder as data: manifest, hashes, signatures and all-or-nothing writes. No torch."""
