/*
 * scnint.h - the scenario parser's helpers, shared by scenario.c (the file
 * format and the cluster sections) and edge_scn.c (the edge sections)
 */
#ifndef DLSCHED_SIM_SCNINT_H
#define DLSCHED_SIM_SCNINT_H

#include "sim.h"

#include <stddef.h>

/* where a value was read: errors are "file:line: key: what" */
typedef struct {
    const char *file;
    size_t line;
    const char *key;
    sim_err *err;
} scn_ctx;

/* sets err to "file:line: field: what" (line 0: "file: field: what"); -1 */
int scn_fail(sim_err *err, const char *file, size_t line, const char *field, const char *fmt,
             ...) __attribute__((format(printf, 5, 6)));
/* s without its leading and trailing blanks (in place) */
char *scn_trim(char *s);
/* a strict number: the whole token, finite. 0 or -1 */
int scn_num(const char *tok, double *out);
/* splits s on blanks into at most cap tokens (in place); cap + 1 when more */
int scn_split(char *s, char **tok, int cap);
/* a number in [lo, hi] (a whole one for scn_get_int), else an error naming
   c's line and key */
int scn_get_num(scn_ctx *c, const char *val, double lo, double hi, double *out);
int scn_get_int(scn_ctx *c, const char *val, double lo, double hi, int *out);


/* ---- edge_scn.c: the edge sections ---- */
enum { SCN_EDGE_NONE, SCN_EDGE_DEVICE, SCN_EDGE_MODE, SCN_EDGE_STREAM, SCN_EDGE_MODEL,
       SCN_EDGE_SCENE };
typedef struct {
    int sec, cur; /* the edge section being read (SCN_EDGE_NONE: another) */
    size_t device_line, res_line;
    size_t stream_line[SIM_EDGE_STREAMS], model_line[SIM_EDGE_MODELS];
    size_t scene_line[SIM_EDGE_SCENES];
    /* read at the end, when every stream and the resolutions are known */
    char res_acc_text[SIM_EDGE_SCENES][256], weights_text[SIM_EDGE_SCENES][256];
    size_t res_acc_line[SIM_EDGE_SCENES], weights_line[SIM_EDGE_SCENES];
} scn_edge_state;

/* [kind name]: 1 when kind is an edge section (es->sec set), 0 when not,
   -1 on error */
int scn_edge_section(sim_scenario *sc, scn_edge_state *es, const char *kind, const char *name,
                     scn_ctx *c);
/* a key of the edge section es->sec */
int scn_edge_key(sim_scenario *sc, scn_edge_state *es, const char *key, char *val, scn_ctx *c);
/* cross-references and defaults once the file is read; the offered frame
   rate and the device's capacity */
int scn_edge_finish(sim_scenario *sc, scn_edge_state *es, const char *file, sim_err *err);

#endif
