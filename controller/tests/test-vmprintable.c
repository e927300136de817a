/* The VM status derived from its VMI (vmprintable.h) and the VMI conditions carried over from its Pod
 * (vmistatus.h): KubeVirt's printableStatus for each state, RestartRequired's template hash. */
#include "api.h"
#include "json.h"
#include "macro.h"
#include "vmistatus.h"
#include "vmprintable.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* JSON written with ' for " (readable fixtures). */
static cJSON *j(const char *s)
{
        char buf[2048];
        assert(strlen(s) < sizeof(buf));
        size_t i = 0;
        for (; s[i]; i++)
                buf[i] = s[i] == '\'' ? '"' : s[i];
        buf[i] = '\0';
        cJSON *r = cJSON_Parse(buf);
        assert(r);
        return r;
}

static const char *printable(const char *vm, const char *vmi, vm_print_in in)
{
        _cleanup_json_ cJSON *v = j(vm), *i = vmi ? j(vmi) : NULL;
        return vm_printable_status(v, i, &in);
}

static void test_printable(void)
{
        const char *vm = "{'metadata':{'name':'a'}}";
        const vm_print_in none = {0};
        assert(!strcmp(printable(vm, NULL, none), "Stopped"));
        assert(!strcmp(printable(vm, NULL, (vm_print_in){.start_expected = true}), "Starting"));
        assert(!strcmp(printable(vm, NULL, (vm_print_in){.crash_loop = true}), "CrashLoopBackOff"));
        assert(!strcmp(printable(vm, NULL, (vm_print_in){.dv_wait = "Provisioning", .start_expected = true}),
                       "Provisioning"));
        assert(!strcmp(printable("{'metadata':{'deletionTimestamp':'2026-01-01T00:00:00Z'}}", NULL, none),
                       "Terminating"));
        assert(!strcmp(printable(vm, "{'status':{'phase':'Scheduling'}}", none), "Starting"));
        assert(!strcmp(printable(vm, "{'status':{'phase':'Running'}}", none), "Running"));
        assert(!strcmp(printable(vm, "{'status':{'phase':'Running'}}", (vm_print_in){.stop_expected = true}),
                       "Stopping"));
        assert(!strcmp(printable(vm,
                                 "{'status':{'phase':'Running','conditions':[{'type':'Paused',"
                                 "'status':'True'}]}}",
                                 none),
                       "Paused"));
        assert(!strcmp(
            printable(vm, "{'status':{'phase':'Running','migrationState':{'migrationUid':'u'}}}", none),
            "Migrating"));
        assert(!strcmp(printable(vm,
                                 "{'status':{'phase':'Running','migrationState':{'migrationUid':'u',"
                                 "'completed':true}}}",
                                 none),
                       "Running"));
        assert(!strcmp(printable(vm,
                                 "{'status':{'phase':'Scheduling','conditions':[{'type':'PodScheduled',"
                                 "'status':'False','reason':'Unschedulable'}]}}",
                                 none),
                       "ErrorUnschedulable"));
        assert(!strcmp(printable(vm,
                                 "{'status':{'phase':'Scheduled','conditions':[{'type':'Synchronized',"
                                 "'status':'False','reason':'ImagePullBackOff'}]}}",
                                 none),
                       "ImagePullBackOff"));
        /* a finished VMI: Stopped, or the backoff before the next try */
        assert(!strcmp(printable(vm, "{'status':{'phase':'Failed'}}", none), "Stopped"));
        assert(!strcmp(printable(vm, "{'status':{'phase':'Failed'}}", (vm_print_in){.crash_loop = true}),
                       "CrashLoopBackOff"));
}

static void test_template_hash(void)
{
        _cleanup_json_ cJSON *a = j("{'spec':{'template':{'spec':{'domain':{'memory':{'guest':'128Mi'},"
                                    "'devices':{'disks':[{'name':'root'}]}},'volumes':[{'name':'root',"
                                    "'containerDisk':{'image':'x'}}]}}}}");
        /* the same template with its keys in another order, and a hot-plugged volume with its disk */
        _cleanup_json_ cJSON *b = j("{'spec':{'template':{'spec':{'volumes':[{'name':'root','containerDisk':"
                                    "{'image':'x'}},{'name':'hp','persistentVolumeClaim':{'claimName':'c',"
                                    "'hotpluggable':true}}],'domain':{'devices':{'disks':[{'name':'root'},"
                                    "{'name':'hp','disk':{'bus':'scsi'}}]},'memory':{'guest':'128Mi'}}}}}}");
        _cleanup_json_ cJSON *c = j("{'spec':{'template':{'spec':{'domain':{'memory':{'guest':'256Mi'},"
                                    "'devices':{'disks':[{'name':'root'}]}},'volumes':[{'name':'root',"
                                    "'containerDisk':{'image':'x'}}]}}}}");
        assert(vm_template_hash(a) == vm_template_hash(b));
        assert(vm_template_hash(a) != vm_template_hash(c));
        char h[VM_TEMPLATE_HASH_LEN], vmi_json[256];
        vm_template_hash_str(a, h);
        assert(strlen(h) == 16);
        snprintf(
            vmi_json, sizeof(vmi_json),
            "{'metadata':{'annotations':{'" VM_ANN_TEMPLATE_HASH "':'%s'}},'status':{'phase':'Running'}}", h);
        _cleanup_json_ cJSON *vmi = j(vmi_json), *old = j("{'status':{'phase':'Running'}}");
        assert(!vm_restart_required(a, vmi) && !vm_restart_required(b, vmi) && vm_restart_required(c, vmi));
        assert(!vm_restart_required(c, old)); /* a VMI with no record: nothing to compare */
}

static const cJSON *cond(const cJSON *st, const char *type)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, kube_obj(st, "conditions")) if (!strcmp(kube_str(c, "type"), type)) return c;
        return NULL;
}

static void test_pod_conditions(void)
{
        const char *now = "2026-01-01T00:00:00Z";
        _cleanup_json_ cJSON *vmi = j("{'metadata':{'name':'v'},'status':{'phase':'Scheduling'}}");
        _cleanup_json_ cJSON *unsched =
            j("{'status':{'phase':'Pending','conditions':[{'type':'PodScheduled','status':'False',"
              "'reason':'Unschedulable','message':'0/1 nodes are available'}]}}");
        _cleanup_json_ cJSON *st = vmi_status_desired(vmi, unsched, now);
        const cJSON *c = cond(st, "PodScheduled");
        assert(c && !strcmp(kube_str(c, "status"), "False") &&
               !strcmp(kube_str(c, "reason"), "Unschedulable") &&
               !strcmp(kube_str(c, "message"), "0/1 nodes are available"));
        cJSON_ReplaceItemInObject(vmi, "status", cJSON_Duplicate(st, 1));
        _cleanup_json_ cJSON *pull = j("{'spec':{'nodeName':'n1'},'status':{'phase':'Pending',"
                                       "'initContainerStatuses':[{'name':'cd','state':{'waiting':{"
                                       "'reason':'ErrImagePull','message':'manifest unknown'}}}]}}");
        _cleanup_json_ cJSON *st2 = vmi_status_desired(vmi, pull, now);
        assert(!cond(st2, "PodScheduled")); /* scheduled now: gone */
        c = cond(st2, "Synchronized");
        assert(c && !strcmp(kube_str(c, "reason"), "ErrImagePull") &&
               !strcmp(kube_str(c, "message"), "manifest unknown"));
        cJSON_ReplaceItemInObject(vmi, "status", cJSON_Duplicate(st2, 1));
        _cleanup_json_ cJSON *ok = j("{'spec':{'nodeName':'n1'},'status':{'phase':'Pending'}}");
        _cleanup_json_ cJSON *st3 = vmi_status_desired(vmi, ok, now);
        assert(!cond(st3, "Synchronized"));
        /* the VM shows the VMI's conditions but its own Ready */
        _cleanup_json_ cJSON *conds = cJSON_CreateArray();
        cJSON_ReplaceItemInObject(vmi, "status", cJSON_Duplicate(st2, 1));
        vm_copy_vmi_conditions(conds, vmi);
        int n_sync = 0, n_ready = 0;
        const cJSON *k;
        cJSON_ArrayForEach(k, conds)
        {
                n_sync += !strcmp(kube_str(k, "type"), "Synchronized");
                n_ready += !strcmp(kube_str(k, "type"), "Ready");
        }
        assert(n_sync == 1 && n_ready == 0);
        /* KubeVirt's LiveMigratable: the bridge binding on the pod network is not, masquerade is */
        _cleanup_json_ cJSON *bridged =
            j("{'metadata':{'name':'b'},'spec':{'domain':{'devices':{'interfaces':"
              "[{'name':'default','bridge':{}}]}},'networks':[{'name':'default',"
              "'pod':{}}]},'status':{'phase':'Scheduling'}}");
        _cleanup_json_ cJSON *st4 = vmi_status_desired(bridged, ok, now);
        c = cond(st4, "LiveMigratable");
        assert(c && !strcmp(kube_str(c, "status"), "False") &&
               !strcmp(kube_str(c, "reason"), "InterfaceNotLiveMigratable"));
        /* nor masquerade plus a macvtap interface on a Multus network: the message says why */
        _cleanup_json_ cJSON *mvt =
            j("{'metadata':{'name':'m'},'spec':{'domain':{'devices':{'interfaces':"
              "[{'name':'default','masquerade':{}},{'name':'l2','binding':{'name':'macvtap'}}]}},"
              "'networks':[{'name':'default','pod':{}},{'name':'l2','multus':{'networkName':'mv'}}]},"
              "'status':{'phase':'Scheduling'}}");
        _cleanup_json_ cJSON *st5 = vmi_status_desired(mvt, ok, now);
        c = cond(st5, "LiveMigratable");
        assert(c && !strcmp(kube_str(c, "status"), "False") &&
               !strcmp(kube_str(c, "reason"), "InterfaceNotLiveMigratable") &&
               strstr(kube_str(c, "message"), "macvtap"));
        cJSON_DeleteItemFromArray(kube_obj(mvt, "spec.domain.devices.interfaces"), 1); /* masquerade only */
        cJSON_DeleteItemFromArray(kube_obj(mvt, "spec.networks"), 1);
        _cleanup_json_ cJSON *st6 = vmi_status_desired(mvt, ok, now);
        c = cond(st6, "LiveMigratable");
        assert(c && !strcmp(kube_str(c, "status"), "True"));
}

int main(void)
{
        test_printable();
        test_template_hash();
        test_pod_conditions();
        printf("vmprintable: ok\n");
        return 0;
}
