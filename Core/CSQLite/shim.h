#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>
#include <stdint.h>
#include <unistd.h>

/// SQLITE_TRANSIENT is a macro that casts -1 to a function pointer; Swift cannot import it.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }

/// Wrapper around the variadic sqlite3_db_config for the int-flag options (e.g. SQLITE_DBCONFIG_DEFENSIVE).
static inline int csqlite_db_config_flag(sqlite3 *db, int op, int value) {
    return sqlite3_db_config(db, op, value, (int *)0);
}

/// Wrapper around the variadic sqlite3_config for short-lived single-threaded processes (every CGI
/// function), before the first connection opens: no mutexes (SQLITE_CONFIG_SINGLETHREAD), no
/// memory statistics, and no lookaside (its 120 KB are set up at open; measured ~70 µs slower
/// per request with it than without, for the few dozen allocations a request makes).
static inline int csqlite_config_single_thread(void) {
    int rc = sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
    if (rc == SQLITE_OK) rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (rc == SQLITE_OK) rc = sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0);
    return rc;
}
/// Busy handler for many short processes writing one WAL database: sleeps that grow from 100 µs
/// to 2 ms, giving up once `timeout_ms` would be exceeded. SQLite's own handler
/// (sqlite3_busy_timeout) sleeps 1, 2, 5, 10, … up to 100 ms at a time, so a writer queued behind
/// transactions of a millisecond could sleep 100 ms after the lock was free: that was the p99 of
/// trigger and approve under load.
static int csqlite_busy_sleep(void *timeout_ms, int count) {
    long limit_us = (long)(intptr_t)timeout_ms * 1000L;
    long step = count < 5 ? (100L << count) : 2000L;
    long slept = count < 5 ? 100L * ((1L << count) - 1) : 3100L + (long)(count - 5) * 2000L;
    if (slept + step > limit_us) return 0;
    usleep((useconds_t)step);
    return 1;
}

static inline int csqlite_busy_handler(sqlite3 *db, int timeout_ms) {
    return sqlite3_busy_handler(db, csqlite_busy_sleep, (void *)(intptr_t)timeout_ms);
}
#endif
