"""valgrind memcheck on one virt-controller run against the API test server: create a VMI (its Pod
appears, the VMI reaches Scheduling), delete it (Pod and finalizer go), SIGTERM, exit 0. No definite leak
and no memory error (--errors-for-leak-kinds=definite --error-exitcode=99). Skipped in sanitizer builds
(KV_SANITIZED=1)."""
import os
import signal

import faultlib  # also puts controller/tests on sys.path
from kubetest import BUILD, POD_PATH, VMI_PATH, Controller, Server, cleanup, vmi_manifest, wait_for

VMIS, PODS = VMI_PATH % "default", POD_PATH % "default"
vg = faultlib.Valgrind(os.path.join(BUILD, "controller", "virt-controller"), "virt-controller")
srv = Server("--pod-finalize-after", "0.2", "--no-gc").start()
ctl = None
try:
    ctl = Controller(srv, binary=vg.wrapper).start()
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
    vg.report(rc)
    assert rc == 0, "virt-controller under valgrind: exit %s (99 = memcheck errors or definite leaks)" % rc
    print("ok: exit 0, no definite leak, no memory error")
    print("PASS")
finally:
    cleanup(*(x for x in (ctl, srv) if x))
    vg.remove()
