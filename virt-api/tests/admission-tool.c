/* admission-tool validate|mutate: one AdmissionReview on stdin, the answer on stdout (exit 0), or the
 * error on stderr (exit 2: not a review). The webhook server in tests/kube-api/webhook.py runs it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "macro.h"

int main(int argc, char **argv)
{
        if (argc != 2 || (strcmp(argv[1], "validate") && strcmp(argv[1], "mutate"))) {
                fprintf(stderr, "usage: admission-tool validate|mutate < review.json\n");
                return 2;
        }
        size_t cap = 1 << 22;
        _cleanup_free_ char *buf = malloc(cap);
        size_t len = buf ? fread(buf, 1, cap, stdin) : 0;
        _cleanup_free_ char *answer = NULL;
        kv_error err = {0};
        int r = !strcmp(argv[1], "validate") ? admission_validate(buf, len, &answer, &err)
                                             : admission_mutate(buf, len, &answer, &err);
        if (r < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 2;
        }
        puts(answer);
        return 0;
}
