/*
 * drop.c: names of the drop reasons.
 */
#include "drop.h"

static const char *const drop_names[QW_DROP__COUNT] = {
#define QW_DROP_NAME(name, str) [QW_DROP_##name] = str,
    QW_DROP_REASONS(QW_DROP_NAME)
#undef QW_DROP_NAME
};

const char *qw_drop_name(enum qw_drop reason)
{
    if ((unsigned)reason >= QW_DROP__COUNT)
        return "unknown";
    return drop_names[reason];
}
