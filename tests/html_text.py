"""Read the browser's HTML in tests: an element's text by id, a table's rows, with the stdlib parser."""

from __future__ import annotations

from html.parser import HTMLParser

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root: dict = {"tag": "root", "attrs": {}, "children": []}
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = {"tag": tag, "attrs": dict(attrs), "children": []}
        self.stack[-1]["children"].append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1]["children"].append(data)


def parse(html: str) -> dict:
    """The document as nested dicts: {"tag", "attrs", "children"}."""
    tree = _Tree()
    tree.feed(html)
    return tree.root


def text(node: dict | str) -> str:
    """An element's text with whitespace collapsed."""
    if isinstance(node, str):
        return node
    return " ".join("".join(text(c) + " " for c in node["children"]).split())


def walk(node: dict):
    yield node
    for child in node["children"]:
        if isinstance(child, dict):
            yield from walk(child)


def by_id(html: str, element_id: str) -> dict:
    """The element with that id (AssertionError when there is none)."""
    for node in walk(parse(html)):
        if node["attrs"].get("id") == element_id:
            return node
    raise AssertionError(f"no element with id {element_id!r}")


def find_all(node: dict, tag: str) -> list[dict]:
    return [n for n in walk(node) if n["tag"] == tag]


def table_rows(html: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells (th and td) of a table."""
    body = find_all(by_id(html, table_id), "tbody")[0]
    return [[text(c) for c in row["children"] if isinstance(c, dict)] for row in find_all(body, "tr")]
