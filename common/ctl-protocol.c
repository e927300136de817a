/* ctl-protocol: the control socket's verb table (ctl-protocol.h). */
#include "ctl-protocol.h"

#include <string.h>

#define CTL_VERB_ROW_(id, name, summary) [CTL_VERB_##id] = {name, summary},
static const struct {
        const char *name, *summary;
} verbs[] = {CTL_VERBS(CTL_VERB_ROW_)};
#undef CTL_VERB_ROW_

const char *ctl_verb_name(ctl_verb v)
{
        return (unsigned)v < CTL_VERB__MAX ? verbs[v].name : NULL;
}

const char *ctl_verb_summary(ctl_verb v)
{
        return (unsigned)v < CTL_VERB__MAX ? verbs[v].summary : NULL;
}

int ctl_verb_from_name(const char *name)
{
        for (int v = 0; name && v < CTL_VERB__MAX; v++)
                if (!strcmp(verbs[v].name, name))
                        return v;
        return -1;
}
