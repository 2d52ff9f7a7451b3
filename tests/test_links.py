"""origine.links: a run reads an input through a link named as stored, never its own name.

Found in review: two inputs whose names differ only in how a number is written
(``stop-0611223399.csv``, ``stop-06.11.22.33.99.csv``) shared one link, so one file was
ingested twice and the other never; a name made too long by its tokens fell back to the
path as given (the number in Dagster's storage).
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from origine.keys import HashKey
from origine.links import MAX_NAME_BYTES, fitted_name, input_digest, link_named, prune_dangling

KEY = HashKey(bytes(range(32)))


def test_two_inputs_with_one_stored_name_get_links_of_their_own(tmp_path: Path) -> None:
    a, b = tmp_path / "stop-0611223399.csv", tmp_path / "stop-06.11.22.33.99.csv"
    a.write_text("a")
    b.write_text("b")
    links = tmp_path / "links"
    la = link_named(a, "stop-[tel:x].csv", links, KEY)
    lb = link_named(b, "stop-[tel:x].csv", links, KEY)
    assert la != lb and la.name == lb.name == "stop-[tel:x].csv"
    assert la.read_text() == "a" and lb.read_text() == "b"
    # made again: the same link, left as it is (same inode), still pointing at its input
    inode = os.lstat(la).st_ino
    assert link_named(a, "stop-[tel:x].csv", links, KEY) == la and os.lstat(la).st_ino == inode
    assert "0611223399" not in str(la) and input_digest(a, KEY) in str(la)


@settings(max_examples=80, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=400),
       st.sampled_from(["", ".csv", ".txt", ".zip"]))
def test_fitted_names_fit_and_keep_their_suffix(stem: str, suffix: str) -> None:
    name = stem + suffix
    fitted = fitted_name(name, "0123456789abcdef")
    assert 0 < len(fitted.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES
    if len(name.encode()) <= MAX_NAME_BYTES and name not in (".", ".."):
        assert fitted == name
    elif name not in (".", ".."):
        assert fitted.endswith("~01234567" + suffix) or not suffix


def test_a_name_too_long_gets_a_shortened_link_never_the_path_as_given(tmp_path: Path) -> None:
    numbers = "_".join(f"06{n:08d}" for n in range(20))  # 219 characters as given
    source = tmp_path / f"{numbers}.csv"
    source.write_text("x")
    stored = "_".join(f"[tel:{n:012x}]" for n in range(20)) + ".csv"  # tokens: longer than 255
    link = link_named(source, stored, tmp_path / "links", KEY)
    assert link.is_symlink() and link.read_text() == "x"
    assert len(link.name.encode()) <= MAX_NAME_BYTES and link.name.endswith(".csv")
    assert numbers not in str(link)


def test_pruning_removes_dangling_links_and_never_enters_a_linked_folder(tmp_path: Path) -> None:
    delivery = tmp_path / "delivery"
    delivery.mkdir()
    (delivery / "dangling-of-the-vendor").symlink_to(tmp_path / "nowhere")
    (delivery / "empty").mkdir()
    gone = tmp_path / "gone.csv"
    gone.write_text("x")
    links = tmp_path / "links"
    kept = link_named(delivery, "d", links / "v" / "1", KEY)
    stale = link_named(gone, "g", links, KEY)
    gone.unlink()
    prune_dangling(links)
    assert kept.is_symlink() and not stale.is_symlink() and not stale.parent.exists()
    # the vendor's own folder is untouched
    assert (delivery / "dangling-of-the-vendor").is_symlink() and (delivery / "empty").is_dir()
