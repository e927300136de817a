/* libFuzzer target: bytes → YAML/JSON → VMI model → (fake-prepared) QEMU argv. Validation must never
 * crash, leak or accept something the argv builder then chokes on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-argv.h"
#include "vmi.h"

/* Stand in for vmi_prepare(): the fuzzer must not touch the filesystem. */
static void fake_prepare(vmi *v)
{
        for (size_t i = 0; i < v->n_volumes; i++) {
                v->volumes[i].prep.path = strdup("/run/kvlite/disk,1.img");
                v->volumes[i].prep.format = i % 2 ? IMG_QCOW2 : IMG_RAW;
        }
        if (v->firmware == FW_EFI)
                v->efi_vars = strdup("/run/kvlite/efi-vars.fd");
        if (v->kernel_path)
                v->kernel_file = strdup("/images/kernelboot/boot/vmlinuz");
        if (v->initrd_path)
                v->initrd_file = strdup("/images/kernelboot/boot/initrd.img");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        vmi *v = NULL;
        kv_error err = {0};
        if (vmi_load_json_string(text, &v, &err) == 0) {
                fake_prepare(v);
                strv argv = {0};
                qemu_argv_opts o = {.qemu_binary = "qemu-system-x86_64",
                                    .accel = size % 2 ? "kvm" : "tcg",
                                    .run_dir = "/run/kvlite",
                                    .qmp_fd = 3,
                                    .serial_fd = -1,
                                    .agent_fd = -1,
                                    .hotplug_ports = -1};
                qemu_argv_build(v, &o, &argv, &err);
                strv_free(&argv);
                vmi_free(v);
        }
        free(text);
        return 0;
}
