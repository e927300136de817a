"""valgrind memcheck on one virt-controller run against the API test server: create a VMI (its Pod
appears, the VMI reaches Scheduling), delete it (Pod and finalizer go), SIGTERM, exit 0. No definite leak
and no memory error (--errors-for-leak-kinds=definite --error-exitcode=99). Skipped in sanitizer builds
(KV_SANITIZED=1)."""
import os
import shutil
import signal
import sys
import tempfile

import faultlib  # noqa: F401  (puts controller/tests on sys.path)
from kubetest import BUILD, POD_PATH, VMI_PATH, Controller, Server, cleanup, vmi_manifest, wait_for

if os.environ.get("KV_SANITIZED") == "1" or not shutil.which("valgrind"):
    print("SKIP: sanitizer build, or no valgrind")
    sys.exit(77)
VMIS, PODS = VMI_PATH % "default", POD_PATH % "default"
wrap_dir = tempfile.mkdtemp(prefix="kv-vg-")
vglog = os.path.join(wrap_dir, "valgrind.log")
wrapper = os.path.join(wrap_dir, "virt-controller-vg")
with open(wrapper, "w") as f:
    f.write("#!/bin/sh\nexec valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite "
            f"--error-exitcode=99 --log-file={vglog} {os.path.join(BUILD, 'controller', 'virt-controller')} \"$@\"\n")
os.chmod(wrapper, 0o755)
srv = Server("--pod-finalize-after", "0.2", "--no-gc").start()
ctl = None
try:
    ctl = Controller(srv, binary=wrapper).start()
    api = srv.api
    api.create(VMIS, vmi_manifest("vg"))
    vmi = wait_for("Scheduling", lambda: (api.get(VMIS + "/vg")[1].get("status") or {}).get("phase") == "Scheduling"
                   and api.get(VMIS + "/vg")[1], timeout=60)
    assert len(api.pods_of(vmi)) == 1
    print("ok: VMI → Pod under valgrind")
    api.ok("DELETE", VMIS + "/vg", {"propagationPolicy": "Background"})
    wait_for("VMI gone", lambda: api.get(VMIS + "/vg")[0] == 404, timeout=60)
    assert api.items(PODS) == []
    print("ok: VMI deleted, its Pod gone")
    rc = ctl.stop(signal.SIGTERM)
    ctl = None
    with open(vglog) as f:
        report = f.read()
    if rc != 0:
        print(report[-6000:])
    assert rc == 0, "virt-controller under valgrind: exit %s (99 = memcheck errors or definite leaks)" % rc
    print("ok: exit 0, no definite leak, no memory error")
    print("PASS")
finally:
    cleanup(*(x for x in (ctl, srv) if x))
    shutil.rmtree(wrap_dir, ignore_errors=True)
