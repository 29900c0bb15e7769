"""The feed rule of ownership: a field may be taken from a system fed from its owner.

System ``a`` owns both fields of ``item``. A flow may take them from ``a``, or
from a system that other flows feed with that field from ``a``, directly or
through a chain of such systems. The failing case with no feed at all is
``take_from_non_owner`` in test_bad_specs.
"""

from __future__ import annotations

from pathlib import Path

from compiler import compile_project

HTTP = """\
version: 1
systems:
  a: {kind: http, base_url: 'https://a.example', streams: {items: {path: /items}}}
  b: {kind: http, base_url: 'https://b.example', streams: {items: {path: /items}}}
  c: {kind: http, base_url: 'https://c.example', streams: {items: {path: /items}}}
  d: {kind: http, base_url: 'https://d.example', streams: {items: {path: /items}}}
  x: {kind: http, base_url: 'https://x.example', streams: {items: {path: /items}}}
entities:
  item:
    key: id
    fields:
      id: {type: string, owner: a}
      name: {type: string, owner: a}
flows:
"""


def copy_flow(name: str, source: str, destination: str,
              sent: tuple[str, ...] = ("id", "name")) -> str:
    """Return a flow that reads ``item`` from one system and sends ``sent`` on."""
    body = "{" + ", ".join(f"{field}: '{{{{ record.{field} }}}}'"
                           for field in sent) + "}"
    return (f"  {name}:\n"
            f"    source: {{system: {source}}}\n"
            "    map: {entity: item, fields: {id: id, name: name}}\n"
            "    destinations:\n"
            f"      - {{system: {destination}, object: Items, mode: upsert, http:"
            f" {{create: {{path: /items, body: {body}}},"
            f" update: {{path: /items, body: {body}}}, id: id}}}}\n")


def compile_flows(tmp_path: Path, *flows: str) -> list[tuple[str, str]]:
    (tmp_path / "syncplan.yaml").write_text(HTTP + "".join(flows), encoding="utf-8")
    result = compile_project(tmp_path)
    return [(d.code, d.message) for d in result.diagnostics]


def test_take_from_system_fed_by_owner(tmp_path: Path) -> None:
    found = compile_flows(tmp_path, copy_flow("a_to_b", "a", "b"),
                          copy_flow("b_to_c", "b", "c"))
    assert found == []


def test_take_through_chain_of_feeds(tmp_path: Path) -> None:
    found = compile_flows(tmp_path, copy_flow("a_to_b", "a", "b"),
                          copy_flow("b_to_c", "b", "c"),
                          copy_flow("c_to_d", "c", "d"))
    assert found == []


def test_feed_order_in_file_does_not_matter(tmp_path: Path) -> None:
    found = compile_flows(tmp_path, copy_flow("c_to_d", "c", "d"),
                          copy_flow("b_to_c", "b", "c"),
                          copy_flow("a_to_b", "a", "b"))
    assert found == []


def test_feed_counts_per_field(tmp_path: Path) -> None:
    # a_to_b sends only id, so b holds no name fed from a.
    found = compile_flows(tmp_path, copy_flow("a_to_b", "a", "b", sent=("id",)),
                          copy_flow("b_to_c", "b", "c"))
    assert found == [("E301", "flow 'b_to_c' takes item.name from system 'b', but"
                              " its owner is 'a'")]


def test_feed_from_non_owner_does_not_count(tmp_path: Path) -> None:
    # x feeds b, but x is not the owner and nothing feeds x from a.
    found = compile_flows(tmp_path, copy_flow("x_to_b", "x", "b"),
                          copy_flow("b_to_c", "b", "c"))
    codes = sorted(code for code, _ in found)
    assert codes == ["E301"] * 4
    assert {message.split(" takes ")[0] for _, message in found} == {
        "flow 'x_to_b'", "flow 'b_to_c'"}


def test_broken_chain_link_rejected(tmp_path: Path) -> None:
    # c is fed from b, but b is fed from nothing, so c_to_d reads unfed fields.
    found = compile_flows(tmp_path, copy_flow("b_to_c", "b", "c"),
                          copy_flow("c_to_d", "c", "d"))
    flows = sorted({message.split(" takes ")[0] for _, message in found})
    assert flows == ["flow 'b_to_c'", "flow 'c_to_d'"]
    assert {code for code, _ in found} == {"E301"}
