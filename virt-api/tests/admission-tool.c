/* admission-tool: the pure cores of virt-api's admission for tests/kube-api/test_webhooks.py.
 *   admission-tool validate|mutate < review.json   the answer on stdout (exit 0; 2: not a review)
 *   admission-tool certs DIR NAMES DAYS            certs_ensure(); prints "kept" or "written" (exit 0; 2:
 * error) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "certs.h"
#include "macro.h"

static int usage(void)
{
        fprintf(stderr, "usage: admission-tool validate|mutate < review.json\n"
                        "       admission-tool certs DIR DNS-NAMES-CSV VALIDITY-DAYS\n");
        return 2;
}

static int review(const char *op)
{
        size_t cap = 1 << 22;
        _cleanup_free_ char *buf = malloc(cap);
        size_t len = buf ? fread(buf, 1, cap, stdin) : 0;
        _cleanup_free_ char *answer = NULL;
        kv_error err = {0};
        int r = !strcmp(op, "validate") ? admission_validate(buf, len, NULL, &answer, &err)
                                        : admission_mutate(buf, len, NULL, &answer, &err);
        if (r < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 2;
        }
        puts(answer);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc == 2 && (!strcmp(argv[1], "validate") || !strcmp(argv[1], "mutate")))
                return review(argv[1]);
        if (argc != 5 || strcmp(argv[1], "certs"))
                return usage();
        kv_error err = {0};
        int r = certs_ensure(argv[2], argv[3], (unsigned)strtoul(argv[4], NULL, 10), &err);
        if (r < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 2;
        }
        puts(r ? "written" : "kept");
        return 0;
}
