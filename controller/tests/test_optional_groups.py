#!/usr/bin/env python3
# Optional API groups (docs/controller.md): the real virt-controller against an API test server that serves
# only the kubevirt.io CRDs. VMIs get their launcher Pods and migrations start with the defaults; the
# snapshot, restore and migration-policy controllers wait (logged once), start when `kubectl apply` installs
# their CRDs, and stop (logged once) when `kubectl delete` removes them. Usage: test_optional_groups.py [NAME...]
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_controller as tc  # noqa: E402
import test_migration as tm  # noqa: E402
import test_snapshot as ts  # noqa: E402
from kubetest import SRC, Controller, Server, cleanup, vmi_manifest, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(SRC, "tests", "kube-api"))
import testlib  # noqa: E402
import yamlite  # noqa: E402

CRDS = os.path.join(SRC, "crds")
OPTIONAL = {"snapshot.kubevirt.io": "/apis/snapshot.kubevirt.io/v1beta1",
            "migrations.kubevirt.io": "/apis/migrations.kubevirt.io/v1alpha1"}
CONTROLLERS = {"snapshot": "snapshot.kubevirt.io", "restore": "snapshot.kubevirt.io",
               "migration-policy": "migrations.kubevirt.io"}
INTERVAL = 1  # --discovery-interval, seconds


def crd_files():
    """{group: [crds/ file]} for the files that hold CustomResourceDefinitions."""
    out = {}
    for name in sorted(os.listdir(CRDS)):
        if name.endswith(".yaml"):
            with open(os.path.join(CRDS, name)) as f:
                for doc in yamlite.load_all(f.read()):
                    if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                        out.setdefault(doc["spec"]["group"], []).append(os.path.join(CRDS, name))
    return out


def core_only_server():
    """An API server started with the kubevirt.io CRDs alone, as in a cluster where the others are missing."""
    d = tempfile.mkdtemp(prefix="kvlite-core-crds-")
    for path in crd_files()["kubevirt.io"]:
        os.symlink(path, os.path.join(d, os.path.basename(path)))
    srv = Server("--crd-dir", d, "--pod-finalize-after", "0.2", "--no-gc").start()
    srv.crd_dir = d
    return srv


def served(api, group):
    return api.get(OPTIONAL[group])[0] == 200


def log_count(ctl, text):
    return sum(text in json.loads(line).get("msg", "") for line in ctl.logtext().splitlines()
               if line.startswith("{"))


def waiting_msg(name):
    return "not served; %s controller waits for its CRDs" % name


def settle(ctl, passes=3):
    """Several discovery intervals pass, so that a repeated log line would show."""
    time.sleep(passes * INTERVAL + 0.5)
    assert ctl.proc.poll() is None, ctl.logtext()


def test_crd_lifecycle(srv, ctl, kubectl):
    api = srv.api
    # the core runs without the optional groups: a VM's VMI gets its launcher Pod, and runs
    launcher = ts.running_vm(api, "core")
    settle(ctl)
    for name in CONTROLLERS:
        assert log_count(ctl, waiting_msg(name)) == 1, (name, ctl.logtext())
        assert log_count(ctl, "%s controller started" % name) == 0, ctl.logtext()

    # kubectl apply of the optional CRDs: the controllers start, and a snapshot is taken
    files = crd_files()
    optional_files = [p for g in OPTIONAL for p in files[g]]
    kubectl("apply", *[a for p in optional_files for a in ("-f", p)])
    assert all(served(api, g) for g in OPTIONAL)
    for name in CONTROLLERS:
        wait_for("%s controller started" % name, lambda: log_count(ctl, "%s controller started" % name) == 1,
                 timeout=10 * INTERVAL + 5)
    uid = ts.snapshot(api, "snap", "core")["metadata"]["uid"]
    req = ts.request_for(api, "core", "save", uid)
    wait_for("InProgress", lambda: ts.snap_phase(api, "snap", "InProgress"))
    launcher.run(req)
    s = wait_for("Succeeded", lambda: ts.snap_phase(api, "snap", "Succeeded"))
    assert s["status"]["readyToUse"] is True, s["status"]
    assert ts.get(api, ts.CONTENTS, "snap-content") is not None

    # kubectl delete of the CRDs: the server forgets the groups, the controllers stop, the core goes on
    kubectl("delete", *[a for p in optional_files for a in ("-f", p)])
    assert not any(served(api, g) for g in OPTIONAL)
    for name in CONTROLLERS:
        wait_for("%s controller stopped" % name, lambda: log_count(ctl, "%s controller stopped" % name) == 1,
                 timeout=10 * INTERVAL + 5)
    settle(ctl)
    for name in CONTROLLERS:
        assert log_count(ctl, "%s controller stopped" % name) == 1, ctl.logtext()
        assert log_count(ctl, "%s controller started" % name) == 1, ctl.logtext()
        assert log_count(ctl, waiting_msg(name)) == 1, ctl.logtext()
    assert tc.phase_is(api, "core", "Running"), tc.vmi_get(api, "core")
    api.create(tc.VMIS, vmi_manifest("after"))
    vmi = wait_for("Scheduling", lambda: tc.phase_is(api, "after", "Scheduling"))
    assert tc.one_pod(api, vmi) is not None


def test_migration_defaults(srv, ctl, kubectl):
    """No migrations.kubevirt.io: no policy applies, a migration starts with the defaults."""
    api = srv.api
    tm.running_vmi(api, "mv")
    tm.vmim(api, "m1", "mv")
    m = wait_for("Scheduling", lambda: tm.vmim_phase(api, "m1", "Scheduling"))
    assert len(tm.targets(api, m)) == 1, tm.targets(api, m)
    assert log_count(ctl, waiting_msg("migration-policy")) == 1, ctl.logtext()


TESTS = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("test_")}


def run(name):
    srv = core_only_server()
    ctl = None
    try:
        for group in OPTIONAL:
            assert not served(srv.api, group), "%s served by a server started without its CRDs" % group
        # /readyz within kubetest's timeout: the optional groups do not hold the workers back
        ctl = Controller(srv, "--discovery-interval", str(INTERVAL)).start()
        TESTS[name](srv, ctl, testlib.Kubectl(srv))
        rc = ctl.stop()
        assert rc == 0, "virt-controller exit code %s" % rc
        print("ok %s" % name)
        srv.remove()
        return True
    except Exception:
        import traceback
        traceback.print_exc()
        if ctl:
            print("--- controller log (last 40 lines)\n" + "\n".join(ctl.logtext().splitlines()[-40:]))
        return False
    finally:
        cleanup(*(x for x in (ctl, srv) if x))
        shutil.rmtree(srv.crd_dir, ignore_errors=True)


if __name__ == "__main__":
    if not shutil.which(testlib.find_kubectl() or "kubectl"):
        print("SKIP: no kubectl")
        sys.exit(testlib.SKIP)
    failed = [n for n in (sys.argv[1:] or list(TESTS)) if not run(n)]
    if failed:
        print("FAILED: %s" % " ".join(failed))
        sys.exit(1)
