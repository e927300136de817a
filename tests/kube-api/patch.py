# PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and the strategic merge patch subset kubectl
# sends for built-in kinds (merge keys of the fields Pods and friends use, $patch, $retainKeys,
# $deleteFromPrimitiveList, $setElementOrder).


class PatchError(ValueError):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def jcopy(value):
    if isinstance(value, dict):
        return {k: jcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jcopy(v) for v in value]
    return value


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return jcopy(patch)
    result = jcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 -------------------------------------------------------------------------------------------
def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(400, "invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, tokens, path):
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise PatchError(422, "doc is missing path: %s" % path)
    return cur


def _get(doc, path):
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError(422, "doc is missing path: %s" % path)


def _absent_member(doc, path):
    tokens = _pointer(path)
    if not tokens:
        return False
    parent = _parent(doc, tokens, path)
    return isinstance(parent, dict) and tokens[-1] not in parent


def _remove(doc, path):
    tokens = _pointer(path)
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(422, "Unable to remove nonexistent key: %s: missing value" % last)


def _add(doc, path, value, replace=False):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(422, "replace operation does not apply: doc is missing key: %s: missing value" % path)
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise PatchError(422, "add operation does not apply: doc is missing path: %s" % path)
    else:
        raise PatchError(422, "doc is missing path: %s" % path)
    return doc


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise PatchError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = jcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(400, "malformed JSON patch operation %r" % (op,))
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(400, "missing value in %s operation" % kind)
        if kind == "add":
            doc = _add(doc, path, jcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, jcopy(op["value"]), replace=True)
        elif kind == "move":
            doc = _add(doc, path, _remove(doc, op.get("from", "")))
        elif kind == "copy":
            doc = _add(doc, path, jcopy(_get(doc, op.get("from", ""))))
        elif kind == "test":
            if op["value"] is None and _absent_member(doc, path):
                continue  # as the apiserver's json-patch: null tests equal to a member its object lacks
            if _get(doc, path) != op["value"]:
                raise PatchError(422, "testing value %s failed: test failed" % path)
        else:
            raise PatchError(400, "Unexpected kind: %s" % kind)
    return doc


# --- strategic merge patch -------------------------------------------------------------------------------
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
              "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
              "ports": "containerPort", "conditions": "type", "ownerReferences": "uid",
              "imagePullSecrets": "name", "hostAliases": "ip", "topologySpreadConstraints": "topologyKey",
              "resourceClaims": "name", "containerStatuses": "name", "initContainerStatuses": "name",
              "addresses": "type", "images": None, "subsets": None, "rules": None, "subjects": None}
PRIMITIVE_MERGE = {"finalizers"}


def strategic_merge(target, patch):
    if not isinstance(patch, dict):
        return jcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: jcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = jcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = jcopy(value)
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field, current, patch):
    if field in PRIMITIVE_MERGE:
        return current + [v for v in patch if v not in current]
    key = MERGE_KEYS.get(field)
    if not key or not all(isinstance(i, dict) for i in patch):
        if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
            return [jcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
        return jcopy(patch)
    result = jcopy(current)
    for item in patch:
        if item.get("$patch") == "replace":
            return [jcopy(i) for i in patch if i.get("$patch") is None]
        idx = next((i for i, cur in enumerate(result) if isinstance(cur, dict) and cur.get(key) == item.get(key)),
                   None)
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
        elif idx is None:
            result.append({k: jcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            result[idx] = strategic_merge(result[idx], item)
    return result
