"""Resources: every outside system the assets touch, configured from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import dagster as dg

from origine.home import Home
from origine.keys import HashKey, load_key


class OrigineHome(dg.ConfigurableResource):
    """The origine home (warehouse, segments, landing) and the hashing key.

    ``hash_key`` / ``hash_key_file`` come from ``EnvVar`` (``ORIGINE_HASH_KEY`` /
    ``ORIGINE_HASH_KEY_FILE``), never from code; without them only a demo home
    works, with the public demo key. ``hash_key_layers`` (``ORIGINE_HASH_KEY_LAYERS``)
    are the rotation layers over it, oldest first.
    """

    home: str
    hash_key: Optional[str] = None
    hash_key_file: Optional[str] = None
    hash_key_layers: Optional[str] = None

    def get_home(self) -> Home:
        """The home, its folders created."""
        return Home(Path(self.home).expanduser().resolve()).ensure()

    def get_key(self) -> HashKey:
        """The hashing key; the demo key only on a demo home."""
        home = self.get_home()
        return load_key(
            env={}, key_text=self.hash_key, key_file=self.hash_key_file,
            layers_text=self.hash_key_layers or "", allow_demo=home.is_demo,
        )
