/* Expectations (as in KubeVirt's controllers): creations a reconciler made that the informer has not shown
 * yet. While any are pending (and younger than the timeout) the reconciler must not create again, so a
 * slow cache never makes a second Pod. Thread-safe. */
#pragma once

#include <stdbool.h>

typedef struct expectations expectations;

expectations *expectations_new(unsigned timeout_ms);
void expectations_free(expectations *e);
void expectations_expect_create(expectations *e, const char *key);
/* The informer saw the object, or the create failed: one fewer pending. */
void expectations_observed(expectations *e, const char *key);
bool expectations_satisfied(expectations *e, const char *key);
void expectations_forget(expectations *e, const char *key);
