/* gen_keytable.c - print the configuration key table of dlsched(7) as tbl(1)
 * source, from the one registry in src/core/registry.h. */
#include <stdio.h>
#include <string.h>

#include "core/config.h"

static const char *type_name(const dls_key_info *k)
{
    switch (k->type) {
    case DLS_T_INT: return "integer";
    case DLS_T_FLOAT: return "number";
    case DLS_T_ENUM: return "choice";
    case DLS_T_INTLIST: return "integer list";
    case DLS_T_FLOATLIST: return "number list";
    }
    return "?";
}

/* roff-escape: backslash and a leading dot */
static void put(const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", stdout);
        else if (*s == '-')
            fputs("\\-", stdout);
        else
            putchar(*s);
    }
}

static void range(const dls_key_info *k)
{
    if (k->type == DLS_T_ENUM) {
        put(k->choices);
        return;
    }
    char b[48];
    if (k->type == DLS_T_INT || k->type == DLS_T_INTLIST) {
        if (k->max >= 9223372036854775807.0)
            snprintf(b, sizeof b, "%.0f .. 2^63\\-1", k->min);
        else
            snprintf(b, sizeof b, "%.0f .. %.0f", k->min, k->max);
        fputs(b, stdout);
        return;
    }
    snprintf(b, sizeof b, "%g .. %g", k->min, k->max);
    put(b);
}

int main(void)
{
    puts(".TS");
    puts("tab(;) allbox;");
    puts("lb lb lb lb lb");
    puts("l l l l lx.");
    puts("key;type;default;range;meaning");
    for (int i = 0; i < DLS_N_KEYS; i++) {
        const dls_key_info *k = &dls_keys[i];
        put(k->name);
        printf(";%s;", type_name(k));
        if (k->flags & DLS_K_REQUIRED)
            fputs("required", stdout);
        else if (!k->def)
            fputs("unset", stdout);
        else if (k->def_qtable) {
            put(k->def);
            fputs(" (dqn), ", stdout);
            put(k->def_qtable);
            fputs(" (qtable)", stdout);
        } else
            put(k->def);
        putchar(';');
        range(k);
        fputs(";T{\n", stdout);
        put(k->help);
        puts("\nT}");
    }
    puts(".TE");
    return 0;
}
