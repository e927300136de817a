# Server-side printing (meta.k8s.io/v1 Table): CRD additionalPrinterColumns through a small JSONPath, and the
# built-in printers kubectl users know for Pods, Namespaces, Nodes and Events.
import datetime
import json
import re

NAME_DESC = ("Name must be unique within a namespace. Is required when creating resources, although some "
             "resources may allow a client to request the generation of an appropriate name automatically. "
             "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
             "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_DESC = ("CreationTimestamp is a timestamp representing the server time when this object was created. "
            "It is not guaranteed to be set in happens-before order across separate operations. Clients may "
            "not set this value. It is represented in RFC3339 form and is in UTC.")


def parse_time(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def human_duration(seconds_f):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    seconds = int(seconds_f)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return "%ds" % seconds
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return "%dm" % minutes if s == 0 else "%dm%ds" % (minutes, s)
    if minutes < 180:
        return "%dm" % minutes
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return "%dh" % hours if m == 0 else "%dh%dm" % (hours, m)
    if hours < 48:
        return "%dh" % hours
    if hours < 24 * 8:
        h = hours % 24
        return "%dd" % (hours // 24) if h == 0 else "%dd%dh" % (hours // 24, h)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return "%dy" % (hours // 24 // 365) if dy == 0 else "%dy%dd" % (hours // 24 // 365, dy)
    return "%dy" % (hours // 24 // 365)


def age(timestamp):
    t = parse_time(timestamp)
    if t is None:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())


# --- JSONPath: the subset printer columns use: .a.b, [N], [*], [?(@.x.y=='v')] and != ---------------------
_SEGMENT = re.compile(r"""\.([A-Za-z0-9_$-]+)|\[(-?\d+)\]|\[\*\]|\[\?\(@((?:\.[A-Za-z0-9_-]+)+)\s*(==|!=)\s*(?:'([^']*)'|"([^"]*)"|(-?[0-9.]+|true|false))\)\]""")


class JSONPathError(ValueError):
    pass


def compile_jsonpath(path):
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("$"):
        text = text[1:]
    steps, pos = [], 0
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if not m:
            raise JSONPathError("unsupported JSONPath %r at %r" % (path, text[pos:]))
        if m.group(1) is not None:
            steps.append(("key", m.group(1)))
        elif m.group(2) is not None:
            steps.append(("index", int(m.group(2))))
        elif m.group(3) is not None:
            lit = m.group(5) if m.group(5) is not None else m.group(6)
            if lit is None:
                lit = json.loads(m.group(7))
            steps.append(("filter", m.group(3)[1:].split("."), m.group(4), lit))
        else:
            steps.append(("all",))
        pos = m.end()
    return steps


def eval_jsonpath(steps, obj):
    current = [obj]
    for step in steps:
        nxt = []
        for value in current:
            if step[0] == "key":
                if isinstance(value, dict) and step[1] in value:
                    nxt.append(value[step[1]])
            elif step[0] == "index":
                if isinstance(value, list) and -len(value) <= step[1] < len(value):
                    nxt.append(value[step[1]])
            elif step[0] == "all":
                if isinstance(value, list):
                    nxt.extend(value)
                elif isinstance(value, dict):
                    nxt.extend(value.values())
            elif isinstance(value, list):
                for item in value:
                    got = item
                    for k in step[1]:
                        got = got.get(k) if isinstance(got, dict) else None
                    if (got == step[3]) == (step[2] == "=="):
                        nxt.append(item)
        current = nxt
    return current


def _cell(col_type, value):
    if value is None:
        return None
    if col_type == "date":
        return age(value) if isinstance(value, str) else None
    if col_type == "integer":
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if col_type == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if col_type == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


def column_definitions(columns):
    defs = [{"name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": 0}]
    for c in columns:
        defs.append({"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                     "description": c.get("description") or
                     ("Custom resource definition column (in JSONPath format): %s" % c.get("jsonPath", "")),
                     "priority": c.get("priority", 0)})
    return defs


def crd_row(columns, obj):
    cells = [obj.get("metadata", {}).get("name")]
    for c in columns:
        found = eval_jsonpath(c["_steps"], obj)
        cells.append(_cell(c.get("type", "string"), found[0] if found else None))
    return cells


# --- built-in printers ------------------------------------------------------------------------------------
def _none(v):
    return v if v not in (None, "") else "<none>"


def _pod_row(pod):
    spec, status, meta = pod.get("spec", {}), pod.get("status", {}), pod.get("metadata", {})
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = status.get("reason") or status.get("phase") or ""
    has_running = False
    for s in reversed(statuses):
        state = s.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            t = state["terminated"]
            reason = t.get("reason") or ("Signal:%d" % t["signal"] if t.get("signal")
                                         else "ExitCode:%d" % t.get("exitCode", 0))
        elif "running" in state and s.get("ready"):
            has_running = True
    if reason == "Completed" and has_running:
        ready_cond = any(c.get("type") == "Ready" and c.get("status") == "True"
                         for c in status.get("conditions") or [])
        reason = "Running" if ready_cond else "NotReady"
    if meta.get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [meta.get("name"), "%d/%d" % (ready, total), reason, str(restarts), age(meta.get("creationTimestamp")),
            _none(status.get("podIP")), _none(spec.get("nodeName")), _none(status.get("nominatedNodeName")),
            _none(",".join(g.get("conditionType", "") for g in gates))]


def _node_row(node):
    meta, status = node.get("metadata", {}), node.get("status", {})
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    state = "Ready" if conds.get("Ready") == "True" else "NotReady" if "Ready" in conds else "Unknown"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (meta.get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/"))
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [meta.get("name"), state, ",".join(roles) or "<none>", age(meta.get("creationTimestamp")),
            info.get("kubeletVersion", ""), _none(addrs.get("InternalIP")), _none(addrs.get("ExternalIP")),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _event_row(ev):
    obj = ev.get("involvedObject") or {}
    last = ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("metadata", {}).get("creationTimestamp")
    return [ev.get("metadata", {}).get("name"), age(last), ev.get("type", ""), ev.get("reason", ""),
            "%s/%s" % (obj.get("kind", "").lower(), obj.get("name", "")), ev.get("message", "")]


def _simple(*cols):
    return [{"name": n, "type": t, "format": "", "priority": p} for n, t, p in cols]


BUILTIN_PRINTERS = {
    "pods": (_simple(("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0),
                     ("Age", "string", 0), ("IP", "string", 1), ("Node", "string", 1),
                     ("Nominated Node", "string", 1), ("Readiness Gates", "string", 1)), _pod_row),
    "namespaces": (_simple(("Status", "string", 0), ("Age", "string", 0)),
                   lambda o: [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""),
                              age(o["metadata"].get("creationTimestamp"))]),
    "nodes": (_simple(("Status", "string", 0), ("Roles", "string", 0), ("Age", "string", 0),
                      ("Version", "string", 0), ("Internal-IP", "string", 1), ("External-IP", "string", 1),
                      ("OS-Image", "string", 1), ("Kernel-Version", "string", 1),
                      ("Container-Runtime", "string", 1)), _node_row),
    "events": (_simple(("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
                       ("Object", "string", 0), ("Message", "string", 0)), _event_row),
    "customresourcedefinitions": (_simple(("Created At", "date", 0)),
                                  lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")]),
}


def _generic_row(obj):
    return [obj["metadata"].get("name"), age(obj["metadata"].get("creationTimestamp"))]


def printer_for(resource):
    """(column definitions, row function) for a registry Resource."""
    if resource.columns is not None:
        cols = resource.columns
        return column_definitions(cols), lambda o: crd_row(cols, o)
    cols, row = BUILTIN_PRINTERS.get(resource.plural, (_simple(("Age", "string", 0)), _generic_row))
    defs = [{"name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": 0}]
    for c in cols:
        defs.append(dict(c, description=AGE_DESC if c["name"] == "Age" else c["name"]))
    return defs, row


def table(resource, objects, list_meta, include="Metadata", with_columns=True):
    defs, row = printer_for(resource)
    rows = []
    for obj in objects:
        if include == "None":
            embedded = None
        elif include == "Object":
            embedded = obj
        else:
            embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj.get("metadata", {})}
        rows.append({"cells": row(obj), "object": embedded})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": defs if with_columns else None, "rows": rows}
