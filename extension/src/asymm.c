/*
 * asymm.c: the one shared library of the asymm extension ($libdir/asymm, MODULE_PATHNAME in the
 * SQL scripts).  Each area keeps its C code in its own file (sync.c: change capture, telemetry.c:
 * the pg_stat_statements diff of asymm.snapshot()); this file
 * only carries the module's magic block, which must appear exactly once per library.
 */
#include "postgres.h"

#include "fmgr.h"

PG_MODULE_MAGIC;
