# Label and field selectors with the apiserver's grammar and error messages.
import re


class SelectorError(ValueError):
    pass


_KEY = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _split_top(text):
    parts, depth, cur = [], 0, []
    for c in text:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def _check_key(key, text):
    if not _KEY.match(key):
        raise SelectorError("unable to parse requirement: invalid label key %r in %r" % (key, text))


def _check_value(value, text):
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError("unable to parse requirement: invalid label value: %r in %r" % (value, text))


def parse_labels(text):
    """Parses a label selector into a list of (key, op, values); op in exists, !, in, notin, gt, lt."""
    reqs = []
    if not text or not text.strip():
        return reqs
    for part in _split_top(text):
        p = part.strip()
        if not p:
            raise SelectorError("found ',', expected: !, identifier, or 'end of string'")
        m = re.match(r"^(\S+?)\s+(in|notin)\s*\((.*)\)$", p)
        if m:
            key, op = m.group(1), m.group(2)
            values = [v.strip() for v in m.group(3).split(",")]
            if values == [""]:
                raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
            _check_key(key, text)
            for v in values:
                _check_value(v, text)
            reqs.append((key, op, set(values)))
            continue
        m = re.match(r"^([^=!<>\s]+)\s*(==|=|!=|<|>)\s*(\S*)$", p)
        if m:
            key, op, value = m.groups()
            _check_key(key, text)
            if op in ("<", ">"):
                try:
                    num = int(value)
                except ValueError:
                    raise SelectorError("for 'Gt', 'Lt' operators, the value must be an integer")
                reqs.append((key, "gt" if op == ">" else "lt", num))
                continue
            _check_value(value, text)
            reqs.append((key, "notin" if op == "!=" else "in", {value}))
            continue
        if p.startswith("!"):
            key = p[1:].strip()
            _check_key(key, text)
            reqs.append((key, "!", None))
            continue
        if re.match(r"^\S+$", p):
            _check_key(p, text)
            reqs.append((p, "exists", None))
            continue
        raise SelectorError("unable to parse requirement: %r" % p)
    return reqs


def match_labels(reqs, labels):
    labels = labels or {}
    for key, op, values in reqs:
        has = key in labels
        if op == "exists" and not has:
            return False
        if op == "!" and has:
            return False
        if op == "in" and (not has or labels[key] not in values):
            return False
        if op == "notin" and has and labels[key] in values:
            return False
        if op in ("gt", "lt"):
            try:
                v = int(labels[key]) if has else None
            except ValueError:
                v = None
            if v is None or (op == "gt" and not v > values) or (op == "lt" and not v < values):
                return False
    return True


def parse_fields(text, supported):
    """Parses a field selector into (field, negate, value) triples; fields outside `supported` are rejected."""
    reqs = []
    if not text:
        return reqs
    for part in re.split(r"(?<!\\),", text):
        if not part:
            continue
        m = re.match(r"^([^=!]+)(==|!=|=)(.*)$", part)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (text, part))
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).replace("\\,", ",")
        if field not in supported:
            raise SelectorError("field label not supported: %s" % field)
        reqs.append((field, op == "!=", value))
    return reqs


def match_fields(reqs, fields):
    for field, negate, value in reqs:
        if (fields.get(field, "") == value) == negate:
            return False
    return True
