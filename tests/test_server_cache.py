"""server.py remembers what it checked in a generation: answers from memory equal answers
from disk, and what it remembers never lets a later change of the tree leak outside bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.index_tree import build_tree, make_wheel
from tests.server_fixtures import JSON, PIP_ACCEPT, Response, request, running_server

SECRET = b"TOP-SECRET-after-the-fact"


def _same(first: Response, second: Response) -> None:
    assert (second.status, second.body) == (first.status, first.body)
    drop = {"date"}
    assert {k: v for k, v in second.headers.items() if k not in drop} == {
        k: v for k, v in first.headers.items() if k not in drop
    }


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/simple/alpha/", {"Accept": PIP_ACCEPT}, id="json-page"),
        pytest.param("/simple/alpha/", {"Accept": "text/html"}, id="html-page"),
        pytest.param("/simple/alpha/alpha-2.0-py3-none-any.whl", {}, id="file"),
        pytest.param(
            "/simple/alpha/alpha-2.0-py3-none-any.whl", {"Range": "bytes=10-29"}, id="range"
        ),
        pytest.param("/simple/alpha/alpha-2.0-py3-none-any.whl.metadata", {}, id="metadata"),
        pytest.param("/env/linux/simple/alpha/", {"Accept": PIP_ACCEPT}, id="view-page"),
    ],
)
def test_second_answer_from_memory_equals_the_first(
    tmp_path: Path, path: str, headers: dict[str, str]
) -> None:
    tree = build_tree(tmp_path / "mirror", environments={"linux": ["alpha"]})
    with running_server(tree.root) as (server, _):
        first = request(server, path, headers)
        assert first.status == (206 if "Range" in headers else 200)
        if path.endswith(".whl"):
            data = next(d.data for d in tree.dists if path.endswith(d.filename))
            assert first.body == (data[10:30] if "Range" in headers else data)
        _same(first, request(server, path, headers))
        _same(first, request(server, path, headers, method="GET"))
        head = request(server, path, headers, method="HEAD")
        assert (head.status, head.body) == (first.status, b"")
        assert head.headers["content-length"] == first.headers["content-length"]
        etag = {"If-None-Match": first.headers["etag"], **headers}
        assert request(server, path, etag).status == 304


def test_a_link_replaced_after_it_was_served_never_serves_outside_bytes(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    tree = build_tree(tmp_path / "mirror")
    dist = next(d for d in tree.dists if d.filename == "alpha-2.0-py3-none-any.whl")
    link = tree.generation(1) / "simple" / "alpha" / dist.filename
    with running_server(tree.root) as (server, _):
        assert request(server, f"/simple/alpha/{dist.filename}").body == dist.data
        link.unlink()
        link.symlink_to(tmp_path / "secret.txt")
        again = request(server, f"/simple/alpha/{dist.filename}")
        assert SECRET not in again.body
        # What was checked is served, or nothing: the old store object is still the answer.
        assert (again.status, hashlib.sha256(again.body).hexdigest()) == (200, dist.sha256)


def test_a_removed_blob_is_404_not_a_crash(tmp_path: Path) -> None:
    """A large file (streamed, never held in memory) whose blob vanished is a plain 404."""
    big = make_wheel("big", "1.0")
    big = type(big)(big.project, big.version, big.filename, os.urandom(2 << 20), big.metadata)
    tree = build_tree(tmp_path / "mirror", [big])
    path = f"/simple/big/{big.filename}"
    with running_server(tree.root) as (server, _):
        assert request(server, path).body == big.data
        blob = (tree.generation(1) / "simple" / "big" / big.filename).resolve()
        blob.chmod(0o644)
        blob.unlink()
        assert request(server, path).status == 404
        assert (
            request(server, "/simple/big/", {"Accept": PIP_ACCEPT}).headers["content-type"] == JSON
        )


def test_new_generation_is_served_after_pages_were_remembered(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    with running_server(tree.root) as (server, _):
        before = request(server, "/simple/", {"Accept": PIP_ACCEPT}).body
        assert b"delta" not in before
        tree.add_generation(2, [*tree.dists, make_wheel("delta", "1.0")])
        after = request(server, "/simple/", {"Accept": PIP_ACCEPT}).body
        assert b'"delta"' in after
        assert request(server, "/simple/delta/", {"Accept": PIP_ACCEPT}).status == 200
