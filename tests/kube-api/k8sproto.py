"""Kubernetes' protobuf encoding (application/vnd.kubernetes.protobuf) for the request bodies the real
kubectl sends that way: its `create secret|configmap|namespace|serviceaccount` use the typed client, which
posts core/v1 objects as protobuf (a real API server decodes them; so must this one). A body is the magic
"k8s\\0" and a runtime.Unknown {typeMeta {apiVersion, kind}, raw, contentEncoding, contentType}; raw is the
object's message, decoded here with the field numbers of k8s.io/api/core/v1/generated.proto and
k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto for the kinds above. decode() returns the object as
its JSON form would parse; a kind it does not know raises Unsupported (the server answers 415)."""
import base64
import struct

MAGIC = b"k8s\x00"


class Unsupported(ValueError):
    pass


def _varint(buf, i):
    shift = value = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(buf):
    """(field number, wire type, value) of each field of a message: ints for varints and fixed, bytes for
    length-delimited."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = struct.unpack_from("<Q", buf, i)[0], i + 8
        elif wt == 5:
            v, i = struct.unpack_from("<I", buf, i)[0], i + 4
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field %d" % num)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError("wire type %d of field %d" % (wt, num))
        yield num, wt, v


def _text(v):
    return v.decode("utf-8")


def _map_entry(v, value_kind):
    key = val = None
    for num, wt, x in fields(v):
        if num in (1, 2) and wt != 2:
            raise ValueError("map entry field %d: wire type %d" % (num, wt))
        if num == 1:
            key = _text(x)
        elif num == 2:
            val = base64.b64encode(x).decode() if value_kind == "bytes" else _text(x)
    return key or "", val if val is not None else ""


def decode_message(buf, schema):
    """schema: {number: (json name, kind)}; kind "str", "bool", "int", "map" (string values), "bmap" (bytes
    values, base64 in JSON), "strs" (repeated string) or a nested schema (a dict; in a list: repeated)."""
    out = {}
    for num, wt, v in fields(buf):
        if num not in schema:
            continue  # fields kubectl leaves at their zero value (timestamps, managedFields)
        name, kind = schema[num]
        if (wt == 0) != (kind in ("bool", "int")) or wt not in (0, 2):
            raise ValueError("field %d (%s): wire type %d" % (num, name, wt))
        # proto2 writes optional scalars even at their zero value; every field here is omitempty in JSON
        if kind == "str" and v:
            out[name] = _text(v)
        elif kind == "bool" and v:
            out[name] = True
        elif kind == "int" and v:
            out[name] = v - (1 << 64) if v >= 1 << 63 else v
        elif kind in ("str", "bool", "int"):
            continue
        elif kind in ("map", "bmap"):
            k, val = _map_entry(v, "bytes" if kind == "bmap" else "str")
            out.setdefault(name, {})[k] = val
        elif kind == "strs":
            out.setdefault(name, []).append(_text(v))
        elif isinstance(kind, list):
            out.setdefault(name, []).append(decode_message(v, kind[0]))
        else:
            out[name] = decode_message(v, kind)
    return out


OWNER_REFERENCE = {1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"), 5: ("apiVersion", "str"),
                   6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")}
OBJECT_META = {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 5: ("uid", "str"),
               6: ("resourceVersion", "str"), 7: ("generation", "int"), 11: ("labels", "map"),
               12: ("annotations", "map"), 13: ("ownerReferences", [OWNER_REFERENCE]), 14: ("finalizers", "strs")}
LOCAL_REF = {1: ("name", "str")}
OBJECT_REF = {1: ("kind", "str"), 2: ("namespace", "str"), 3: ("name", "str"), 4: ("uid", "str"),
              5: ("apiVersion", "str")}
KINDS = {
    ("v1", "Secret"): {1: ("metadata", OBJECT_META), 2: ("data", "bmap"), 3: ("type", "str"),
                       4: ("stringData", "map"), 5: ("immutable", "bool")},
    ("v1", "ConfigMap"): {1: ("metadata", OBJECT_META), 2: ("data", "map"), 3: ("binaryData", "bmap"),
                          4: ("immutable", "bool")},
    ("v1", "Namespace"): {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("finalizers", "strs")})},
    ("v1", "ServiceAccount"): {1: ("metadata", OBJECT_META), 2: ("secrets", [OBJECT_REF]),
                               3: ("imagePullSecrets", [LOCAL_REF]), 4: ("automountServiceAccountToken", "bool")},
}


def decode(body):
    """A protobuf request body → the object as a dict (apiVersion and kind from its envelope)."""
    if not body.startswith(MAGIC):
        raise ValueError("no k8s protobuf magic")
    env = decode_message(body[len(MAGIC):], {1: ("typeMeta", {1: ("apiVersion", "str"), 2: ("kind", "str")}),
                                              3: ("contentEncoding", "str"), 4: ("contentType", "str")})
    raw = next((v for num, wt, v in fields(body[len(MAGIC):]) if num == 2 and wt == 2), b"")
    tm = env.get("typeMeta") or {}
    api, kind = tm.get("apiVersion", ""), tm.get("kind", "")
    if env.get("contentEncoding"):
        raise Unsupported("protobuf contentEncoding %r is not supported" % env["contentEncoding"])
    schema = KINDS.get((api, kind))
    if schema is None:
        raise Unsupported("the test API server decodes protobuf only for %s; send %s/%s as JSON" % (
            ", ".join(k for _, k in sorted(KINDS)), api, kind))
    obj = {"apiVersion": api, "kind": kind}
    obj.update(decode_message(raw, schema))
    return obj
