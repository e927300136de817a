# yamlite: a small YAML loader (the subset Kubernetes manifests use) for the Python-stdlib-only test tools.
# Block mappings and sequences, plain/quoted scalars, flow [..] and {..}, block scalars | and >, documents
# separated by ---; a quoted scalar may continue on more indented lines (folded: each line break is a space).
# Anchors, aliases, tags and multi-line plain scalars are rejected with a line number.
import json
import re

__all__ = ["load_all", "load", "YAMLError"]


class YAMLError(ValueError):
    pass


_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


def _plain(text):
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.match(text):
        return int(text)
    if text.startswith("0x") and re.match(r"^0x[0-9a-fA-F]+$", text):
        return int(text, 16)
    if text.startswith("0o") and re.match(r"^0o[0-7]+$", text):
        return int(text[2:], 8)
    if _FLOAT.match(text):
        return float(text)
    if text in (".inf", ".Inf", "+.inf"):
        return float("inf")
    if text in ("-.inf", "-.Inf"):
        return float("-inf")
    if text in (".nan", ".NaN"):
        return float("nan")
    return text


class _Line:
    __slots__ = ("no", "indent", "text")

    def __init__(self, no, indent, text):
        self.no, self.indent, self.text = no, indent, text


class _Parser:
    def __init__(self, raw_lines, first_no):
        self.raw = raw_lines
        self.first_no = first_no
        self.lines = []  # significant lines only; index into raw kept for block scalars
        self.raw_index = []
        for idx, raw in enumerate(raw_lines):
            if "\t" in raw[: len(raw) - len(raw.lstrip())]:
                raise self.error(idx, "tab in indentation")
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            self.lines.append(_Line(first_no + idx, len(raw) - len(raw.lstrip(" ")), stripped))
            self.raw_index.append(idx)
        self.pos = 0

    def error(self, idx_or_line, msg):
        no = idx_or_line.no if isinstance(idx_or_line, _Line) else self.first_no + idx_or_line
        return YAMLError("line %d: %s" % (no, msg))

    def parse(self):
        if not self.lines:
            return None
        value = self.block(self.lines[0].indent)
        if self.pos < len(self.lines):
            raise self.error(self.lines[self.pos], "unexpected content (bad indentation?)")
        return value

    def block(self, indent):
        line = self.lines[self.pos]
        if line.text == "-" or line.text.startswith("- "):
            return self.sequence(line.indent)
        if _split_key(line.text) is not None:
            return self.mapping(line.indent)
        self.pos += 1
        value = self.inline(line.text, line)
        if self.pos < len(self.lines) and self.lines[self.pos].indent > indent:
            raise self.error(self.lines[self.pos], "multi-line plain scalars are not supported")
        return value

    def sequence(self, indent):
        items = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.indent < indent:
                break
            if line.indent > indent or not (line.text == "-" or line.text.startswith("- ")):
                if line.indent == indent:
                    break
                raise self.error(line, "bad indentation in sequence")
            rest = line.text[1:].lstrip(" ")
            if not rest or rest.startswith("#"):
                self.pos += 1
                items.append(self.nested_value(indent, line))
                continue
            # "- key: v" or "- - x": the item's content starts at the column of rest
            col = line.indent + (len(line.text) - len(rest))
            self.lines[self.pos] = _Line(line.no, col, rest)
            items.append(self.block(col))
        return items

    def nested_value(self, indent, line, seq_same_indent=False):
        if self.pos >= len(self.lines):
            return None
        nxt = self.lines[self.pos]
        if nxt.indent > indent:
            return self.block(nxt.indent)
        if seq_same_indent and nxt.indent == indent and (nxt.text == "-" or nxt.text.startswith("- ")):
            return self.sequence(indent)
        return None

    def mapping(self, indent):
        result = {}
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.indent < indent:
                break
            if line.indent > indent:
                raise self.error(line, "bad indentation in mapping")
            kv = _split_key(line.text)
            if kv is None:
                break
            key, rest = kv
            key = self.key(key, line)
            if key in result:
                raise self.error(line, "duplicate key %r" % key)
            self.pos += 1
            rest_nc = _strip_comment(rest)
            if rest_nc == "":
                result[key] = self.nested_value(indent, line, seq_same_indent=True)
            elif rest_nc[0] in "|>":
                result[key] = self.block_scalar(rest_nc, line, indent)
            else:
                result[key] = self.inline(rest, line)
        return result

    def key(self, text, line):
        if text[:1] in "\"'":
            value, end = _quoted(text, 0, line, self)
            return value
        if text[:1] in "&*!?[{":
            raise self.error(line, "unsupported key syntax %r" % text)
        return text

    def block_scalar(self, header, line, indent):
        m = re.match(r"^([|>])([-+]?)([0-9]?)$", header)
        if not m:
            raise self.error(line, "bad block scalar header %r" % header)
        style, chomp = m.group(1), m.group(2)
        start_raw = self.raw_index[self.pos - 1] + 1
        end_raw = start_raw
        # block content is every raw line more indented than the key, or blank
        body = []
        block_indent = None
        while end_raw < len(self.raw):
            raw = self.raw[end_raw]
            if raw.strip() == "":
                body.append("")
                end_raw += 1
                continue
            ind = len(raw) - len(raw.lstrip(" "))
            if ind <= indent:
                break
            if block_indent is None:
                block_indent = int(m.group(3)) + indent if m.group(3) else ind
            if ind < block_indent:
                break
            body.append(raw[block_indent:])
            end_raw += 1
        while self.pos < len(self.lines) and self.raw_index[self.pos] < end_raw:
            self.pos += 1
        while body and body[-1] == "" and chomp != "+":
            body.pop()
        if style == "|":
            text = "\n".join(body)
        else:
            text = ""
            for i, part in enumerate(body):
                prev = body[i - 1] if i else None
                if i == 0 or prev == "":
                    text += part if part else "\n"
                elif part == "":
                    text += "\n"
                elif part.startswith(" ") or prev.startswith(" "):
                    text += "\n" + part
                else:
                    text += " " + part
        if chomp != "-" and body:
            text += "\n"
        return text

    def inline(self, text, line):
        text = text.strip()
        if text[:1] in "&*!":
            raise self.error(line, "anchors, aliases and tags are not supported")
        if text[:1] in "\"'":
            while True:
                try:
                    value, end = _quoted(text, 0, line, self)
                    break
                except YAMLError as e:
                    # a multi-line quoted scalar: fold the more indented lines that follow into it
                    more = self.pos < len(self.lines) and self.lines[self.pos].indent > line.indent
                    if "unterminated" not in str(e) or not more:
                        raise
                    text += " " + self.lines[self.pos].text
                    self.pos += 1
            if _strip_comment(text[end:]) != "":
                raise self.error(line, "unexpected text after quoted scalar")
            return value
        if text[:1] in "[{":
            value, end = _flow(text, 0, line, self)
            if _strip_comment(text[end:]) != "":
                raise self.error(line, "unexpected text after flow collection")
            return value
        return _plain(_strip_comment(text))


def _strip_comment(text):
    # a plain scalar ends at " #"
    i = text.find(" #")
    if text.startswith("#"):
        return ""
    return (text[:i] if i >= 0 else text).strip()


def _split_key(text):
    """Returns (key, rest) when text is `key: rest`, else None; quotes and brackets are respected."""
    if text[:1] in "\"'":
        q = text[0]
        i = 1
        while i < len(text):
            if text[i] == q:
                if q == "'" and text[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                break
            if q == '"' and text[i] == "\\":
                i += 1
            i += 1
        rest = text[i + 1 :].lstrip(" ")
        if rest.startswith(":") and (len(rest) == 1 or rest[1] == " "):
            return text[: i + 1], rest[1:].strip()
        return None
    if text.startswith(("[", "{", "#", "- ")) or text == "-":
        return None
    m = re.match(r"^([^#]*?):( |$)", text)
    if not m or m.group(1).strip() == "":
        return None
    return m.group(1).rstrip(), text[m.end() :].strip()


def _quoted(text, i, line, parser):
    q = text[i]
    j = i + 1
    out = []
    while j < len(text):
        c = text[j]
        if c == q:
            if q == "'" and text[j + 1 : j + 2] == "'":
                out.append("'")
                j += 2
                continue
            if q == '"':
                return json.loads('"' + "".join(out) + '"'), j + 1
            return "".join(out), j + 1
        if q == '"' and c == "\\":
            nxt = text[j + 1 : j + 2]
            if nxt in ("\\", '"', "/", "b", "f", "n", "r", "t", "u"):
                out.append(text[j : j + 2])
            elif nxt == "0":
                out.append("\\u0000")
            elif nxt == "x":
                out.append("\\u00" + text[j + 2 : j + 4])
                j += 2
            else:
                raise parser.error(line, "unsupported escape \\%s" % nxt)
            j += 2
            continue
        if q == '"' and c in ('"',):
            out.append('\\"')
        else:
            out.append(c)
        j += 1
    raise parser.error(line, "unterminated quoted scalar (multi-line quoted scalars are not supported)")


def _flow(text, i, line, parser):
    opener = text[i]
    closer = "]" if opener == "[" else "}"
    result = [] if opener == "[" else {}
    i += 1
    while True:
        while i < len(text) and text[i] == " ":
            i += 1
        if i >= len(text):
            raise parser.error(line, "unterminated flow collection")
        if text[i] == closer:
            return result, i + 1
        key = None
        if opener == "{":
            key, i = _flow_scalar(text, i, line, parser, ":")
            while i < len(text) and text[i] == " ":
                i += 1
            if text[i : i + 1] != ":":
                raise parser.error(line, "expected ':' in flow mapping")
            i += 1
            while i < len(text) and text[i] == " ":
                i += 1
        if text[i : i + 1] in ("[", "{"):
            value, i = _flow(text, i, line, parser)
        else:
            value, i = _flow_scalar(text, i, line, parser, ",")
        if opener == "[":
            result.append(value)
        else:
            result[key] = value
        while i < len(text) and text[i] == " ":
            i += 1
        if text[i : i + 1] == ",":
            i += 1
        elif text[i : i + 1] != closer:
            raise parser.error(line, "expected ',' or '%s' in flow collection" % closer)


def _flow_scalar(text, i, line, parser, stop):
    if text[i] in "\"'":
        return _quoted(text, i, line, parser)
    j = i
    while j < len(text) and text[j] not in ",]}" and not (stop == ":" and text[j] == ":"):
        j += 1
    return _plain(text[i:j].strip()), j


def load_all(text):
    """Every document of a YAML stream; empty documents are skipped."""
    docs = []
    raw = text.split("\n")
    start = 0
    for idx, line in enumerate(raw + ["---"]):
        if line.rstrip() in ("---", "...") or line.startswith("--- ") or idx == len(raw):
            doc_lines = raw[start:idx]
            if line.startswith("--- ") and line[4:].strip() and not line[4:].strip().startswith("#"):
                raise YAMLError("line %d: content after --- is not supported" % (idx + 1))
            value = _Parser(doc_lines, start + 1).parse()
            if value is not None:
                docs.append(value)
            start = idx + 1
    return docs


def load(text):
    docs = load_all(text)
    if len(docs) > 1:
        raise YAMLError("expected one document, found %d" % len(docs))
    return docs[0] if docs else None


if __name__ == "__main__":
    import sys

    for path in sys.argv[1:]:
        with open(path) as f:
            print(json.dumps(load_all(f.read()), indent=1))
