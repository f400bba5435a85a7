"""YAML files whose errors name the file, the line and what is wrong.

The document is parsed with ``yaml.safe_load`` (no Python objects, ever); a second, safe composition
of the same text keeps each node's line so that a checker can point at it. Duplicate keys, which
``safe_load`` would silently collapse, are an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evidencekit.errors import InputError

if TYPE_CHECKING:
    import yaml

PathKey = tuple[str | int, ...]


class YamlFileError(InputError):
    """A YAML input file (profile or configuration) is not what it must be."""

    def __init__(self, file: str, line: int | None, message: str, *, hint: str | None = None
                 ) -> None:
        where = f"{file}, line {line}" if line else file
        super().__init__(f"{where}: {message}", hint=hint)
        self.file = file
        self.line = line
        self.problem = message


@dataclass
class Document:
    """Parsed YAML data plus the line (1-based) of every mapping value and list item."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)
    error_type: type[YamlFileError] = YamlFileError

    def line(self, path: PathKey) -> int:
        """The line of *path*, or of its nearest ancestor that exists."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return 1

    def error(self, path: PathKey, message: str, hint: str | None = None,
              where: PathKey | None = None) -> YamlFileError:
        """An error at the line of *path*, prefixed with *where* (default: *path*) dotted."""
        where_text = dotted(path if where is None else where)
        return self.error_type(self.file, self.line(path), f"{where_text}: {message}"
                               if where_text else message, hint=hint)


def dotted(path: Sequence[str | int]) -> str:
    """``("targets", 0, "linux")`` → ``targets[0].linux``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load(text: str, file: str, error_type: type[YamlFileError] = YamlFileError) -> Document:
    # Imported here: every command imports this module (the configuration file's errors), few
    # read a YAML file (PyYAML's import is 5-10 ms of every command's start-up).
    import yaml

    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and ("end of stream" in (exc.problem or "")
                                             or "<stream end>" in (exc.problem or "")):
            mark = exc.context_mark  # an unclosed quote or bracket: where it was opened
        problem = " ".join(filter(None, [exc.context, exc.problem])) or "syntax error"
        raise error_type(file, mark.line + 1 if mark else None,
                         f"this is not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise error_type(file, None, f"this is not valid YAML: {exc}") from None
    document = Document(file, data, error_type=error_type)
    if node is not None:
        document.lines[()] = node.start_mark.line + 1
        _index(node, (), document)
    return document


def _index(node: yaml.Node, path: PathKey, document: Document) -> None:
    import yaml  # loaded by load() already: a look-up in sys.modules

    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _key(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise document.error_type(document.file, line,
                                          f"{dotted((*path, str(key)))}: duplicate key (first "
                                          f"given on line {seen[key]})")
            seen[key] = line
            child = (*path, key if isinstance(key, str) else str(key))
            document.lines[child] = line
            _index(value_node, child, document)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            document.lines[child] = item.start_mark.line + 1
            _index(item, child, document)


def _key(node: yaml.Node) -> Any:
    import yaml

    if isinstance(node, yaml.ScalarNode):
        return yaml.SafeLoader("").construct_object(node)
    return f"<{type(node).__name__}>"
