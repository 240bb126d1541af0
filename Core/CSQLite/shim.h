#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>

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
#endif
