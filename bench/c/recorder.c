/* recorder — what adnanh/webhook runs at its best: a small C program that inserts the delivery
 * id (argv[2]) into the SQLite database argv[1] (WAL, synchronous=NORMAL, busy timeout), as the
 * C floor handler does. webhook has already checked the HMAC. Exit status 0 only if recorded. */
#include <sqlite3.h>
#include <stdio.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 3 || !argv[2][0]) return 2;
    sqlite3 *db;
    sqlite3_stmt *stmt;
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) return 1;
    sqlite3_busy_timeout(db, 10000);
    sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    if (sqlite3_prepare_v2(db, "INSERT INTO deliveries (delivery_id, received_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING", -1, &stmt, NULL) != SQLITE_OK) return 1;
    sqlite3_bind_text(stmt, 1, argv[2], -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rc == SQLITE_DONE ? 0 : 1;
}
