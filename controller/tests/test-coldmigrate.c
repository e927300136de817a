/* The pure part of cold migration (vm-coldmigrate.c): the copy claims' names, and the start hold. */
#undef NDEBUG
#include "vmcoldmigrate.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void name_is(const char *from, const char *want)
{
        char *got = cold_migration_claim_name(from);
        if (strcmp(got, want)) {
                fprintf(stderr, "%s: got %s, want %s\n", from, got, want);
                abort();
        }
        free(got);
}

int main(void)
{
        name_is("data", "data-cm1");
        name_is("data-cm1", "data-cm2");
        name_is("data-cm9", "data-cm10");
        name_is("data-cm10", "data-cm11");
        name_is("data-cm", "data-cm-cm1");     /* no number */
        name_is("data-cm0", "data-cm0-cm1");   /* not one this code makes */
        name_is("data-cmx1", "data-cmx1-cm1"); /* not digits */
        name_is("vm-cm1-disk", "vm-cm1-disk-cm1");
        name_is("a-cm123456789", "a-cm123456789-cm1"); /* too long a number is a name, not a count */

        cJSON *vm = cJSON_Parse("{\"metadata\":{\"annotations\":{\"kvlite.io/cold-migrate\":\"\"}}}");
        assert(vm_cold_migrate_holds(vm));
        cJSON_Delete(vm);
        vm = cJSON_Parse("{\"metadata\":{\"annotations\":{\"kvlite.io/cold-migration\":\"{}\"}}}");
        assert(!vm_cold_migrate_holds(vm)); /* a finished move's record does not hold the VM */
        cJSON_Delete(vm);
        printf("ok - cold migration claim names and start hold\n");
        return 0;
}
