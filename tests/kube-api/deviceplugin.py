# deviceplugin.py: the kubelet's side of the device-plugin API v1beta1 for the kubelet stand-in. It serves
# Registration on <dir>/kubelet.sock, dials each registered plugin, follows its ListAndWatch stream, and
# allocates devices to Pods through Allocate. Real gRPC (Debian's python3-grpcio) and messages compiled by
# protoc from handler/deviceplugin.proto, the same file the node agent's C code is generated from.
import os
import shutil
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "handler", "deviceplugin.proto")
API_VERSION = "v1beta1"


def load():
    """Imports grpc (falling back to Debian's dist-packages under another python3 of the same version) and
    the message classes compiled now from the .proto. Returns (grpc, pb) or raises ImportError."""
    try:
        import grpc
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        import grpc
    out = tempfile.mkdtemp(prefix="deviceplugin-pb.")
    src = os.path.dirname(os.path.abspath(PROTO))
    p = subprocess.run(["protoc", "-I" + src, "--python_out=" + out, os.path.abspath(PROTO)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        raise ImportError("protoc: " + p.stderr.strip())
    sys.path.insert(0, out)
    try:
        import deviceplugin_pb2 as pb
    finally:  # the module is loaded: its generated source is not needed again
        sys.path.remove(out)
        shutil.rmtree(out, ignore_errors=True)
    return grpc, pb


def method(pb, name):
    """(path, request class, response class) of a device-plugin API method."""
    table = {"Register": ("/v1beta1.Registration/Register", pb.RegisterRequest, pb.Empty),
             "GetDevicePluginOptions": ("/v1beta1.DevicePlugin/GetDevicePluginOptions", pb.Empty,
                                        pb.DevicePluginOptions),
             "ListAndWatch": ("/v1beta1.DevicePlugin/ListAndWatch", pb.Empty, pb.ListAndWatchResponse),
             "Allocate": ("/v1beta1.DevicePlugin/Allocate", pb.AllocateRequest, pb.AllocateResponse),
             "GetPreferredAllocation": ("/v1beta1.DevicePlugin/GetPreferredAllocation",
                                        pb.PreferredAllocationRequest, pb.PreferredAllocationResponse)}
    return table[name]


class AllocationError(Exception):
    pass


class DeviceManager:
    """What the kubelet's devicemanager does for these cases: registration, per-resource device lists from
    ListAndWatch (healthy ones count), and Allocate for a Pod's containers, remembering which device IDs each
    Pod holds until it is released."""

    def __init__(self, plugin_dir, on_change, log):
        self.grpc, self.pb = load()
        self.dir, self.on_change, self.log = plugin_dir, on_change, log
        self.lock = threading.Lock()
        self.resources = {}  # resource name -> {"endpoint", "channel", "devices": {id: health}}
        self.held = {}  # pod uid -> {resource: [ids]}
        self.server = None

    def start(self):
        grpc = self.grpc
        os.makedirs(self.dir, exist_ok=True)
        path, req, resp = method(self.pb, "Register")
        handler = grpc.method_handlers_generic_handler("v1beta1.Registration", {
            "Register": grpc.unary_unary_rpc_method_handler(self.register, request_deserializer=req.FromString,
                                                            response_serializer=resp.SerializeToString)})
        from concurrent import futures
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
        sock = os.path.join(self.dir, "kubelet.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        self.server.add_insecure_port("unix:" + sock)
        self.server.start()
        self.log("device-plugin registration serving", socket=sock)

    def stop(self):
        if self.server:
            self.server.stop(0)
        with self.lock:
            for r in self.resources.values():
                r["channel"].close()

    def register(self, request, context):
        if request.version != API_VERSION:
            context.abort(self.grpc.StatusCode.INVALID_ARGUMENT, "unsupported version %s" % request.version)
        name = request.resource_name
        if "/" not in name or name.startswith("kubernetes.io/"):
            context.abort(self.grpc.StatusCode.INVALID_ARGUMENT, "invalid extended resource name %s" % name)
        channel = self.grpc.insecure_channel("unix:" + os.path.join(self.dir, request.endpoint))
        with self.lock:
            old = self.resources.get(name)
            self.resources[name] = {"endpoint": request.endpoint, "channel": channel, "devices": {}}
        if old:
            old["channel"].close()
        self.log("device plugin registered", resource=name, endpoint=request.endpoint)
        threading.Thread(target=self.list_and_watch, args=(name, channel), daemon=True).start()
        return self.pb.Empty()

    def list_and_watch(self, name, channel):
        path, req, resp = method(self.pb, "ListAndWatch")
        stream = channel.unary_stream(path, request_serializer=req.SerializeToString,
                                      response_deserializer=resp.FromString)
        try:
            for update in stream(self.pb.Empty()):
                with self.lock:
                    r = self.resources.get(name)
                    if not r or r["channel"] is not channel:
                        return
                    r["devices"] = {d.ID: d.health for d in update.devices}
                self.on_change()
        except self.grpc.RpcError as e:
            self.log("ListAndWatch ended", resource=name, error=str(e.code()))
        with self.lock:  # the plugin went away: its devices with it, as the kubelet does after a grace period
            r = self.resources.get(name)
            if r and r["channel"] is channel:
                r["devices"] = {}
        self.on_change()

    def capacity(self):
        """{resource: (capacity, allocatable)}: every device counts for capacity, healthy ones for
        allocatable."""
        with self.lock:
            return {n: (len(r["devices"]), sum(1 for h in r["devices"].values() if h == "Healthy"))
                    for n, r in self.resources.items()}

    def manages(self, resource):
        with self.lock:
            return resource in self.resources

    def allocate(self, uid, containers):
        """containers: [(name, {resource: count})]. Picks free healthy IDs, calls each plugin's Allocate
        once per resource with one ContainerAllocateRequest per container, and returns {container name:
        [DeviceSpec, ...]}. Raises AllocationError when a resource is unknown or short."""
        picked = {}  # resource -> [(container, [ids])]
        with self.lock:
            if uid in self.held:
                raise AllocationError("devices already allocated to this Pod")
            taken = {}
            for held in self.held.values():
                for res, ids in held.items():
                    taken.setdefault(res, set()).update(ids)
            for cname, wants in containers:
                for res, n in wants.items():
                    r = self.resources.get(res)
                    if r is None:
                        raise AllocationError("no device plugin serves %s" % res)
                    free = [i for i, h in sorted(r["devices"].items()) if h == "Healthy"
                            and i not in taken.get(res, set())]
                    if len(free) < n:
                        raise AllocationError("requested %s: %d, available: %d" % (res, n, len(free)))
                    taken.setdefault(res, set()).update(free[:n])
                    picked.setdefault(res, []).append((cname, free[:n]))
            self.held[uid] = {res: [i for _, ids in lst for i in ids] for res, lst in picked.items()}
            channels = {res: self.resources[res]["channel"] for res in picked}
        out = {cname: [] for cname, _ in containers}
        try:
            path, req, resp = method(self.pb, "Allocate")
            for res, lst in picked.items():
                call = channels[res].unary_unary(path, request_serializer=req.SerializeToString,
                                                 response_deserializer=resp.FromString)
                request = self.pb.AllocateRequest(container_requests=[
                    self.pb.ContainerAllocateRequest(devices_ids=ids) for _, ids in lst])
                answer = call(request, timeout=10)
                if len(answer.container_responses) != len(lst):
                    raise AllocationError("%s: Allocate answered %d containers for %d" % (
                        res, len(answer.container_responses), len(lst)))
                for (cname, _), cr in zip(lst, answer.container_responses):
                    out[cname].extend(cr.devices)
        except (self.grpc.RpcError, AllocationError) as e:
            self.release(uid)
            if isinstance(e, AllocationError):
                raise
            raise AllocationError("Allocate: %s: %s" % (e.code(), e.details()))
        return out

    def release(self, uid):
        with self.lock:
            self.held.pop(uid, None)
