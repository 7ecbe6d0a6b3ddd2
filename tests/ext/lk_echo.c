/*
** lk_echo: the smallest loadable SQLite extension with a virtual table module, for litekeep's
** tests of --load-extension / Builder::load_extension. `CREATE VIRTUAL TABLE t USING
** lk_echo(a, b)` declares a table with those columns and no rows. Built by the tests with
** `cc -shared -fPIC` against the system's sqlite3ext.h.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
#include <string.h>

typedef struct { sqlite3_vtab base; } EchoTab;
typedef struct { sqlite3_vtab_cursor base; } EchoCursor;

static int echoConnect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                       sqlite3_vtab **out, char **err) {
  sqlite3_str *s = sqlite3_str_new(db);
  sqlite3_str_appendall(s, "CREATE TABLE x(");
  for (int i = 3; i < argc; i++) {
    sqlite3_str_appendf(s, "%s%s", i > 3 ? ", " : "", argv[i]);
  }
  if (argc <= 3) sqlite3_str_appendall(s, "value");
  sqlite3_str_appendall(s, ")");
  char *sql = sqlite3_str_finish(s);
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_declare_vtab(db, sql);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return rc;
  EchoTab *t = sqlite3_malloc(sizeof(*t));
  if (!t) return SQLITE_NOMEM;
  memset(t, 0, sizeof(*t));
  *out = &t->base;
  (void)aux; (void)err;
  return SQLITE_OK;
}
static int echoDisconnect(sqlite3_vtab *t) { sqlite3_free(t); return SQLITE_OK; }
static int echoBestIndex(sqlite3_vtab *t, sqlite3_index_info *info) {
  info->estimatedCost = 1.0; (void)t; return SQLITE_OK;
}
static int echoOpen(sqlite3_vtab *t, sqlite3_vtab_cursor **out) {
  EchoCursor *c = sqlite3_malloc(sizeof(*c));
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof(*c));
  *out = &c->base; (void)t;
  return SQLITE_OK;
}
static int echoClose(sqlite3_vtab_cursor *c) { sqlite3_free(c); return SQLITE_OK; }
static int echoFilter(sqlite3_vtab_cursor *c, int n, const char *s, int argc, sqlite3_value **v) {
  (void)c; (void)n; (void)s; (void)argc; (void)v; return SQLITE_OK;
}
static int echoNext(sqlite3_vtab_cursor *c) { (void)c; return SQLITE_OK; }
static int echoEof(sqlite3_vtab_cursor *c) { (void)c; return 1; }
static int echoColumn(sqlite3_vtab_cursor *c, sqlite3_context *ctx, int i) {
  (void)c; (void)i; sqlite3_result_null(ctx); return SQLITE_OK;
}
static int echoRowid(sqlite3_vtab_cursor *c, sqlite_int64 *id) { (void)c; *id = 0; return SQLITE_OK; }

static sqlite3_module echoModule = {
  0, echoConnect, echoConnect, echoBestIndex, echoDisconnect, echoDisconnect,
  echoOpen, echoClose, echoFilter, echoNext, echoEof, echoColumn, echoRowid,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
};

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_lkecho_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  SQLITE_EXTENSION_INIT2(api);
  (void)err;
  return sqlite3_create_module(db, "lk_echo", &echoModule, 0);
}
