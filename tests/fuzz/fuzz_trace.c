/* fuzz_trace.c - libFuzzer harness for dlsched-sim's trace loader: the first
 * byte picks the format ('a' azure, 'm' mooncake, else csv), the rest is the
 * file. Any file must load or give an error naming the file, never crash,
 * hang or leak; a loaded trace has sorted, finite, non-negative rows that
 * start at 0. Built by `make fuzz`. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/fuzz_trace.%ld", (long)getpid());
    if (size < 1)
        return 0;
    int format = data[0] == 'a' ? SIM_TRACE_AZURE : data[0] == 'm' ? SIM_TRACE_MOONCAKE
                                                                    : SIM_TRACE_CSV;
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    sim_trace_row *rows = NULL;
    size_t n = 0;
    sim_err err = {{0}};
    if (sim_trace_load(path, format, &rows, &n, &err)) {
        if (strncmp(err.msg, path, strlen(path)) != 0)
            abort();
    } else {
        if (n < 2 || rows[0].t != 0)
            abort();
        for (size_t i = 0; i < n; i++)
            if (!isfinite(rows[i].t) || rows[i].in < 0 || rows[i].out < 0 ||
                (i && rows[i].t < rows[i - 1].t))
                abort();
        free(rows);
    }
    unlink(path);
    return 0;
}
