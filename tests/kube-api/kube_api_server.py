#!/usr/bin/env python3
# kube_api_server: a small, faithful Kubernetes API server for tests (kubectl 1.32 and the kvlite controller
# drive it). Command line, TLS material, kubeconfig/service-account output and state persistence live here;
# see docs/kube-api-test-server.md for what is faithful and what is simplified.
import argparse
import atexit
import ipaddress
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import admission as admissionlib  # noqa: E402
import registry as reglib  # noqa: E402
from api import Api, ApiError, Manager  # noqa: E402
from httpapi import Server, save_state  # noqa: E402

DEFAULT_CRD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crds")
EXIT_USAGE, EXIT_CRD, EXIT_TLS, EXIT_LISTEN = 2, 3, 4, 5


def run_openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def is_ip(name):
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def make_certs(directory, sans=()):
    """A CA, a server certificate for 127.0.0.1/localhost and the IP addresses or DNS names in sans (the listen
    address), and a client certificate, made with openssl."""
    run = run_openssl
    names = ["IP:127.0.0.1", "DNS:localhost"]
    for n in sans:
        name = ("IP:" if is_ip(n) else "DNS:") + n
        if name not in names and n not in ("0.0.0.0", "::"):
            names.append(name)
    alt = ",".join(names)

    p = lambda name: os.path.join(directory, name)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "3650", "-subj",
        "/CN=kvlite-test-ca")
    for name, subj, ext in (("server", "/CN=kube-apiserver",
                             "subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % alt),
                            ("client", "/O=system:masters/CN=kvlite-admin", "extendedKeyUsage=clientAuth\n")):
        with open(p(name + ".ext"), "w") as f:
            f.write(ext + "keyUsage=critical,digitalSignature,keyEncipherment\n")
        run("req", *ec, "-keyout", p(name + ".key"), "-out", p(name + ".csr"), "-subj", subj)
        run("x509", "-req", "-in", p(name + ".csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial",
            "-out", p(name + ".crt"), "-days", "3650", "-extfile", p(name + ".ext"))
    return {k: p(k.replace("_", ".")) for k in ("ca_crt", "server_crt", "server_key", "client_crt", "client_key")}


def tls_context(certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["server_crt"], certs["server_key"])
    ctx.load_verify_locations(certs["ca_crt"])
    ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is one authenticator among several
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def write_kubeconfig(path, url, ca=None, token=None):
    cluster = {"server": url}
    if ca:
        cluster["certificate-authority"] = ca
    user = {"token": token} if token else {}
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "kvlite-test",
              "clusters": [{"name": "kvlite-test", "cluster": cluster}],
              "users": [{"name": "kvlite-test", "user": user}],
              "contexts": [{"name": "kvlite-test", "context": {"cluster": "kvlite-test", "user": "kvlite-test",
                                                                "namespace": "default"}}]}
    with open(path, "w") as f:
        json.dump(config, f, indent=1)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="A Kubernetes API server for tests: kubevirt.io/v1 kinds from the CRDs in --crd-dir, core "
                    "Pods/Namespaces/Nodes/Events/Secrets/ConfigMaps, discovery, Tables, watch, TLS+token. "
                    "Prints one JSON line with the chosen ports when it is ready.")
    ap.add_argument("--port", type=int, help="plain HTTP port (anonymous; 0 picks a free port)")
    ap.add_argument("--tls-port", type=int, help="HTTPS port with bearer-token/client-cert auth (0 picks one)")
    ap.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    ap.add_argument("--token", action="append", default=[], help="accepted bearer token (repeatable; "
                    "default: one random token)")
    ap.add_argument("--cert-dir", help="where to generate the CA and certificates (default: a temp dir)")
    ap.add_argument("--crd-dir", default=DEFAULT_CRD_DIR, help="load the CRDs of this directory at start "
                    "(default: the source tree's crds/)")
    ap.add_argument("--no-crds", action="store_true", help="start without CRDs (create them with kubectl apply)")
    ap.add_argument("--port-file", help="write the ready JSON line to this file too")
    ap.add_argument("--kubeconfig-out", help="write a kubeconfig for this server (https when --tls-port is set)")
    ap.add_argument("--serviceaccount-dir", help="write token, ca.crt and namespace as an in-cluster "
                    "service-account directory (needs --tls-port)")
    ap.add_argument("--state-file", help="load objects from this file at start and save them on SIGTERM/SIGINT "
                    "and POST /_test/save (a restart keeps objects and the resourceVersion counter)")
    ap.add_argument("--history", type=int, default=20000, help="watch history length in changes (default 20000)")
    ap.add_argument("--bookmark-interval", type=float, default=60.0, help="seconds between watch bookmarks")
    ap.add_argument("--watch-timeout", type=float, help="default watch timeout in seconds (default: 1800-3600)")
    ap.add_argument("--no-gc", action="store_true", help="no ownerReference garbage collection")
    ap.add_argument("--pod-finalize-after", type=float, help="finalize graceful Pod deletions after this many "
                    "seconds (when no kubelet stand-in runs)")
    ap.add_argument("--legacy-discovery", action="store_true", help="serve only legacy (not aggregated) discovery")
    ap.add_argument("--pod-log-dir", help="serve pods/log from <dir>/<ns>_<pod>_<container>.log (kubelet.py "
                    "--log-dir writes there)")
    ap.add_argument("--log-requests", action="store_true", help="print one JSON line per request on stdout")
    args = ap.parse_args(argv)
    if args.port is None and args.tls_port is None:
        ap.error("one of --port or --tls-port is required")
    if args.serviceaccount_dir and args.tls_port is None:
        ap.error("--serviceaccount-dir needs --tls-port (in-cluster clients speak https)")
    return args


def build_api(args):
    registry = reglib.Registry()
    api = Api(registry, args.history)
    api.config.bookmark_interval = args.bookmark_interval
    api.config.watch_timeout = args.watch_timeout
    api.config.gc = not args.no_gc
    api.config.pod_finalize_after = args.pod_finalize_after
    api.config.aggregated_discovery = not args.legacy_discovery
    restored = False
    if args.state_file and os.path.exists(args.state_file):
        with open(args.state_file) as f:
            state = json.load(f)
        with api.lock:
            api.store.objects.clear()
            api.store.uids.clear()
            api.store.restore(state)
            for crd in api.store.objects.get(("apiextensions.k8s.io", "customresourcedefinitions"), {}).values():
                registry.add(reglib.resource_from_crd(crd))
        restored = True
    if not args.no_crds and not restored:
        crd_res = api.resource("apiextensions.k8s.io", "customresourcedefinitions")
        for crd in reglib.load_crd_dir(args.crd_dir):
            api.create(crd_res, None, crd, Manager("kube-api-test-server"))
    return api


def main(argv):
    args = parse_args(argv)
    try:
        api = build_api(args)
    except (OSError, ValueError, ApiError) as e:
        print("kube_api_server: cannot load CRDs or state: %s" % e, file=sys.stderr)
        return EXIT_CRD
    servers, ready = [], {}
    tokens = args.token or [secrets.token_hex(16)]
    made = []  # temporary directories of its own (no --cert-dir): removed when the server ends
    atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in made])
    try:
        if args.port is not None:
            srv = Server((args.address, args.port), api, log_requests=args.log_requests,
                         pod_log_dir=args.pod_log_dir, state_file=args.state_file)
            servers.append(srv)
            ready["http_port"] = srv.server_address[1]
            ready["http_url"] = "http://%s:%d" % (args.address, srv.server_address[1])
        if args.tls_port is not None:
            cert_dir = args.cert_dir or tempfile.mkdtemp(prefix="kube-api-certs.")
            made += [] if args.cert_dir else [cert_dir]
            os.makedirs(cert_dir, exist_ok=True)
            try:
                certs = make_certs(cert_dir, [args.address])
                ctx = tls_context(certs)
            except (OSError, subprocess.CalledProcessError, ssl.SSLError) as e:
                print("kube_api_server: cannot make TLS material in %s: %s" % (cert_dir, e), file=sys.stderr)
                return EXIT_TLS
            srv = Server((args.address, args.tls_port), api, ssl_context=ctx, tokens=tokens,
                         log_requests=args.log_requests, pod_log_dir=args.pod_log_dir, state_file=args.state_file)
            servers.append(srv)
            ready.update(https_port=srv.server_address[1],
                         https_url="https://%s:%d" % (args.address, srv.server_address[1]), token=tokens[0],
                         **{k: v for k, v in certs.items()})
    except OSError as e:
        print("kube_api_server: cannot listen: %s" % e, file=sys.stderr)
        return EXIT_LISTEN
    # The aggregator's identity towards APIService backends, published as upstream does it.
    try:
        proxy_dir = args.cert_dir or tempfile.mkdtemp(prefix="kube-api-front-proxy.")
        made += [] if args.cert_dir else [proxy_dir]
        os.makedirs(proxy_dir, exist_ok=True)
        fp_ca, fp_crt, fp_key = admissionlib.make_front_proxy_certs(proxy_dir, run_openssl)
    except (OSError, subprocess.CalledProcessError) as e:
        print("kube_api_server: cannot make the front-proxy certificates: %s" % e, file=sys.stderr)
        return EXIT_TLS
    api.admission.client_cert = (fp_crt, fp_key)
    ready.update(front_proxy_ca_crt=fp_ca, front_proxy_client_crt=fp_crt, front_proxy_client_key=fp_key)
    cm = admissionlib.front_proxy_configmap(open(ready["ca_crt"]).read() if "ca_crt" in ready else None,
                                            open(fp_ca).read())
    cm_res = api.resource("", "configmaps")
    with api.lock:
        stale = api.store.get(cm_res.key, "kube-system", cm["metadata"]["name"])
        if stale is not None:
            api.store.remove(cm_res.key, stale)
    api.create(cm_res, None, cm, Manager("kube-apiserver"))
    if args.kubeconfig_out:
        if "https_url" in ready:
            write_kubeconfig(args.kubeconfig_out, ready["https_url"], ready["ca_crt"], tokens[0])
        else:
            write_kubeconfig(args.kubeconfig_out, ready["http_url"])
        ready["kubeconfig"] = args.kubeconfig_out
    if args.serviceaccount_dir:
        os.makedirs(args.serviceaccount_dir, exist_ok=True)
        for name, content in (("token", tokens[0]), ("ca.crt", open(ready["ca_crt"]).read()),
                              ("namespace", "default")):
            with open(os.path.join(args.serviceaccount_dir, name), "w") as f:
                f.write(content)
        ready["serviceaccount_dir"] = args.serviceaccount_dir

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for srv in servers:
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    line = json.dumps(ready)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.replace(tmp, args.port_file)
    print(line, flush=True)
    stop.wait()
    if args.state_file:
        save_state(api, args.state_file, final=True)
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
