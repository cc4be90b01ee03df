// The recorder benchmark's yardstick: a tight C loop inserting rows into the contract `gates`
// table (or, with CELL gru, `gru_gates`) (schema/*.sql, WAL) with one prepared statement in one
// transaction, binding all values of every row (11 for gates, 9 for gru_gates).
//
//   cc -O2 -o bench_insert scripts/bench_insert.c -lsqlite3
//   bench_insert DB SCHEMA.sql SEQUENCES STEPS UNITS_PER_LAYER LAYERS [PAGE_SIZE [CELL]]
//
// SCHEMA.sql is run with one sqlite3_exec, so it may be all of schema/*.sql concatenated in order
// (gru_gates is created by migration 003).
// PAGE_SIZE (default SQLite's 4096) lets the yardstick use the page size the recorder gives the
// databases it creates, so both write the same table layout; other settings are SQLite defaults
// plus WAL and synchronous=NORMAL. CELL is lstm (default: gates, values i f g o c h) or gru
// (gru_gates, values z r n h).
// Rows = SEQUENCES * LAYERS * STEPS * UNITS, inserted in primary-key order (seq, layer, step,
// unit) like the recorder. Prints "rows N seconds S rows_per_s R" (open + insert + commit + close).
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void check(sqlite3 *db, int rc, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "bench_insert: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc(n + 1);
    if (fread(text, 1, n, f) != (size_t)n) { perror(path); exit(1); }
    text[n] = 0;
    fclose(f);
    return text;
}

int main(int argc, char **argv) {
    if (argc < 7 || argc > 9) {
        fprintf(stderr, "usage: bench_insert DB SCHEMA.sql SEQUENCES STEPS UNITS LAYERS [PAGE_SIZE [CELL]]\n");
        return 2;
    }
    const char *cell = argc == 9 ? argv[8] : "lstm";
    int values;  // gate values per row, after the 5 key columns
    const char *insert;
    if (strcmp(cell, "lstm") == 0) {
        values = 6;
        insert = "INSERT INTO gates (run_id, seq_id, layer_id, step, unit, i, f, g, o, c, h) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    } else if (strcmp(cell, "gru") == 0) {
        values = 4;
        insert = "INSERT INTO gru_gates (run_id, seq_id, layer_id, step, unit, z, r, n, h) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
    } else {
        fprintf(stderr, "bench_insert: CELL must be lstm or gru, not %s\n", cell);
        return 2;
    }
    const char *path = argv[1];
    long sequences = atol(argv[3]), steps = atol(argv[4]), units = atol(argv[5]), layers = atol(argv[6]);
    char *schema = slurp(argv[2]);
    remove(path);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sqlite3 *db;
    check(db, sqlite3_open(path, &db), "open");
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas, "PRAGMA page_size=%ld; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
             argc >= 8 ? atol(argv[7]) : 4096L);
    check(db, sqlite3_exec(db, pragmas, 0, 0, 0), "pragmas");
    check(db, sqlite3_exec(db, schema, 0, 0, 0), "schema");
    check(db, sqlite3_exec(db, "INSERT INTO runs (run_id, model_path, model_sha256, model_format, input_path, input_sha256, "
                               "created_at, tool_version, params) VALUES (1, 'm', 'x', 'keras', 'i', 'y', 'now', 'c', '{}')", 0, 0, 0), "run");

    sqlite3_stmt *st;
    check(db, sqlite3_prepare_v2(db, insert, -1, &st, 0), "prepare");
    check(db, sqlite3_exec(db, "BEGIN", 0, 0, 0), "begin");
    unsigned long long state = 88172645463325252ULL;
    long rows = 0;
    for (long s = 0; s < sequences; s++)
        for (long l = 0; l < layers; l++)
            for (long t = 0; t < steps; t++)
                for (long u = 0; u < units; u++) {
                    sqlite3_bind_int64(st, 1, 1);
                    sqlite3_bind_int64(st, 2, s);
                    sqlite3_bind_int64(st, 3, l);
                    sqlite3_bind_int64(st, 4, t);
                    sqlite3_bind_int64(st, 5, u);
                    for (int g = 0; g < values; g++) {
                        // Float32 values like the engine's, in (-1, 1).
                        state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                        float v = (float)((double)(state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
                        sqlite3_bind_double(st, 6 + g, (double)v);
                    }
                    check(db, sqlite3_step(st), "step");
                    sqlite3_reset(st);
                    rows++;
                }
    check(db, sqlite3_exec(db, "COMMIT", 0, 0, 0), "commit");
    sqlite3_finalize(st);
    check(db, sqlite3_close(db), "close");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("rows %ld seconds %.3f rows_per_s %.0f\n", rows, seconds, rows / seconds);
    free(schema);
    return 0;
}
