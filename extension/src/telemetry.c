/*
 * telemetry.c: the diff at the heart of asymm.snapshot().
 *
 * Every pulse (4.909 Hz) asymm.snapshot() must find which of thousands of pg_stat_statements
 * entries moved since the previous tick.  Done in SQL, that is a hash join of the whole view with
 * asymm.query_counters (the last counters seen), which costs about as much again as reading the
 * view.  Here the view's function is called directly and each entry is looked up in a
 * backend-local hash table that mirrors asymm.query_counters, so a tick costs little more than the
 * read itself, and only the entries that changed come back to SQL, which keeps the durable copy
 * (asymm.query_counters) and the history up to date.
 *
 * The mirror is trusted only while it provably equals the table: it is tagged with the snapshot
 * generation (asymm.telemetry_state.snapshots) it corresponds to.  The caller passes the
 * generation it read under the state row's lock; on any mismatch (first call in this backend,
 * another session took a snapshot, the previous tick rolled back) the mirror is reloaded from the
 * table.  After a successful diff the mirror holds the counters of generation + 1, which is what
 * the table holds once the caller's transaction commits.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(asymm_pgss_changes);

/* The key of a pg_stat_statements entry. */
typedef struct CounterKey
{
	Oid			userid;
	Oid			dbid;
	int64		queryid;
	bool		toplevel;
} CounterKey;

typedef struct Counters
{
	int64		calls;
	double		total_ms;
	int64		rows;
	int64		blks_hit;
	int64		blks_read;
} Counters;

typedef struct CounterEntry
{
	CounterKey	key;			/* must be first: the hash key */
	Counters	last;
	uint64		seen_tick;		/* the diff that last saw this entry in pg_stat_statements */
} CounterEntry;

/* The mirror of asymm.query_counters; NULL until first loaded in this backend. */
static HTAB *mirror = NULL;
static int64 mirror_generation = -1;
static uint64 diff_tick = 0;

/* pg_stat_statements' output columns this diff reads, by name. */
enum
{
	COL_USERID, COL_DBID, COL_TOPLEVEL, COL_QUERYID, COL_CALLS, COL_TOTAL, COL_ROWS, COL_HIT, COL_READ,
	NUM_COLS
};
static const char *const col_names[NUM_COLS] = {
	"userid", "dbid", "toplevel", "queryid", "calls", "total_exec_time", "rows",
	"shared_blks_hit", "shared_blks_read"
};
static const Oid col_types[NUM_COLS] = {
	OIDOID, OIDOID, BOOLOID, INT8OID, INT8OID, FLOAT8OID, INT8OID, INT8OID, INT8OID
};

/* Output columns of asymm._pgss_changes(). */
#define OUT_COLS 15

static HTAB *
new_mirror(void)
{
	HASHCTL		ctl;

	if (mirror != NULL)
		hash_destroy(mirror);
	mirror = NULL;
	mirror_generation = -1;
	ctl.keysize = sizeof(CounterKey);
	ctl.entrysize = sizeof(CounterEntry);
	ctl.hcxt = TopMemoryContext;
	return hash_create("asymm telemetry counters", 8192, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Rebuild the mirror from asymm.query_counters (the durable copy). */
static void
reload_mirror(void)
{
	HTAB	   *fresh = new_mirror();
	uint64		i;

	elog(DEBUG1, "asymm: loading the telemetry mirror from asymm.query_counters");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "asymm: SPI_connect failed");
	if (SPI_execute("SELECT userid, dbid, queryid, toplevel, calls, total_ms, rows, shared_blks_hit,"
					" shared_blks_read FROM asymm.query_counters", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "asymm: could not read asymm.query_counters");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		CounterKey	key;
		CounterEntry *entry;
		bool		isnull;
		bool		found;

		memset(&key, 0, sizeof(key));
		key.userid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		key.dbid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		key.queryid = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		key.toplevel = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		entry = hash_search(fresh, &key, HASH_ENTER, &found);
		entry->last.calls = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		entry->last.total_ms = DatumGetFloat8(SPI_getbinval(tup, desc, 6, &isnull));
		entry->last.rows = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
		entry->last.blks_hit = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
		entry->last.blks_read = DatumGetInt64(SPI_getbinval(tup, desc, 9, &isnull));
		entry->seen_tick = 0;
	}
	SPI_finish();
	mirror = fresh;
}

/*
 * pg_stat_statements(boolean) of the installed pg_stat_statements extension, in the schema the
 * caller names; anything else (another function of that name, a missing extension) is an error,
 * since its result is read by position-independent but type-checked column names only.
 */
static Oid
pgss_function(const char *schema)
{
	Oid			argtypes[1] = {BOOLOID};
	Oid			ext = get_extension_oid("pg_stat_statements", true);
	Oid			fn;
	AclResult	acl;

	if (!OidIsValid(ext))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
						errmsg("the pg_stat_statements extension is not installed in this database"),
						errhint("CREATE EXTENSION pg_stat_statements (and preload it in shared_preload_libraries).")));
	fn = LookupFuncName(list_make2(makeString(pstrdup(schema)), makeString("pg_stat_statements")),
						1, argtypes, true);
	if (!OidIsValid(fn) || getExtensionOfObject(ProcedureRelationId, fn) != ext)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
						/* the name in the detail: the message stays one line whatever it holds */
						errmsg("function pg_stat_statements(boolean) of extension pg_stat_statements not found in the given schema"),
						errdetail("Schema: %s.", quote_identifier(schema)),
						errhint("Pass the schema pg_stat_statements is installed in.")));
	acl = pg_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_FUNCTION, get_func_name(fn));
	return fn;
}

/* Call pg_stat_statements(false) and return its materialized result. */
static Tuplestorestate *
read_pgss(Oid fn, ExprContext *econtext, TupleDesc *desc)
{
	FmgrInfo	flinfo;
	ReturnSetInfo rsinfo;
	LOCAL_FCINFO(fcinfo, 1);

	fmgr_info(fn, &flinfo);
	memset(&rsinfo, 0, sizeof(rsinfo));
	rsinfo.type = T_ReturnSetInfo;
	rsinfo.econtext = econtext;
	rsinfo.allowedModes = (int) SFRM_Materialize;
	rsinfo.returnMode = SFRM_Materialize;
	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, (Node *) &rsinfo);
	fcinfo->args[0].value = BoolGetDatum(false);
	fcinfo->args[0].isnull = false;
	(void) FunctionCallInvoke(fcinfo);
	if (rsinfo.returnMode != SFRM_Materialize || rsinfo.setResult == NULL || rsinfo.setDesc == NULL)
		elog(ERROR, "asymm: pg_stat_statements() did not return a materialized set");
	*desc = rsinfo.setDesc;
	return rsinfo.setResult;
}

static void
find_columns(TupleDesc desc, AttrNumber *attnums)
{
	int			c;
	int			i;

	for (c = 0; c < NUM_COLS; c++)
	{
		attnums[c] = InvalidAttrNumber;
		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped && strcmp(NameStr(att->attname), col_names[c]) == 0)
			{
				if (att->atttypid != col_types[c])
					elog(ERROR, "asymm: pg_stat_statements column %s has an unexpected type", col_names[c]);
				attnums[c] = att->attnum;
				break;
			}
		}
		if (attnums[c] == InvalidAttrNumber)
			elog(ERROR, "asymm: pg_stat_statements has no column %s (unsupported version?)", col_names[c]);
	}
}

static bool
skipped_role(Oid userid, Oid *skip, int nskip)
{
	int			i;

	for (i = 0; i < nskip; i++)
		if (skip[i] == userid)
			return true;
	return false;
}

static void
emit(Tuplestorestate *out, TupleDesc outdesc, const CounterKey *key, char status,
	 const Counters *now, const Counters *last)
{
	Datum		values[OUT_COLS];
	bool		nulls[OUT_COLS];

	memset(nulls, 0, sizeof(nulls));
	values[0] = ObjectIdGetDatum(key->dbid);
	values[1] = ObjectIdGetDatum(key->userid);
	values[2] = Int64GetDatum(key->queryid);
	values[3] = BoolGetDatum(key->toplevel);
	values[4] = CharGetDatum(status);
	if (now)
	{
		values[5] = Int64GetDatum(now->calls);
		values[6] = Float8GetDatum(now->total_ms);
		values[7] = Int64GetDatum(now->rows);
		values[8] = Int64GetDatum(now->blks_hit);
		values[9] = Int64GetDatum(now->blks_read);
	}
	else
		memset(nulls + 5, true, 5);
	if (last)
	{
		values[10] = Int64GetDatum(last->calls);
		values[11] = Float8GetDatum(last->total_ms);
		values[12] = Int64GetDatum(last->rows);
		values[13] = Int64GetDatum(last->blks_hit);
		values[14] = Int64GetDatum(last->blks_read);
	}
	else
		memset(nulls + 10, true, 5);
	tuplestore_putvalues(out, outdesc, values, nulls);
}

/*
 * asymm._pgss_changes(pgss_schema name, generation bigint, forget boolean, only_db oid,
 *                     skip_roles oid[])
 * Entries of pg_stat_statements(false) that differ from the last counters seen, with a status:
 * 'n' new, 'm' moved forward, 'r' restarted (a counter went down: reset or evicted and re-created
 * between ticks), 'g' gone (left the view: its last counters are returned).  forget: the whole
 * view was reset, every last counter is dropped first.
 */
Datum
asymm_pgss_changes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *schema;
	int64		generation;
	bool		forget;
	Oid			only_db;
	Oid		   *skip = NULL;
	int			nskip = 0;
	Oid			fn;
	Tuplestorestate *pgss;
	TupleDesc	pgss_desc;
	TupleTableSlot *slot;
	AttrNumber	attnums[NUM_COLS];
	HASH_SEQ_STATUS scan;
	CounterEntry *entry;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("pgss_schema, generation and forget must not be NULL"),
						errhint("This is asymm.snapshot()'s internal helper; call asymm.snapshot().")));
	schema = NameStr(*PG_GETARG_NAME(0));
	generation = PG_GETARG_INT64(1);
	forget = PG_GETARG_BOOL(2);
	only_db = PG_ARGISNULL(3) ? InvalidOid : PG_GETARG_OID(3);
	if (!PG_ARGISNULL(4))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(4);
		Datum	   *elems;
		bool	   *elem_nulls;
		int			i;

		deconstruct_array(arr, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &elems, &elem_nulls, &nskip);
		skip = palloc(sizeof(Oid) * Max(nskip, 1));
		for (i = 0; i < nskip; i++)
			skip[i] = elem_nulls[i] ? InvalidOid : DatumGetObjectId(elems[i]);
	}

	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != OUT_COLS)
		elog(ERROR, "asymm: _pgss_changes declared with the wrong number of columns");

	fn = pgss_function(schema);
	if (forget)
		mirror = new_mirror();	/* the caller emptied asymm.query_counters */
	else if (mirror == NULL || mirror_generation != generation)
		reload_mirror();
	/* From here until the end the mirror is being changed: invalid if anything fails. */
	mirror_generation = -1;

	pgss = read_pgss(fn, rsinfo->econtext, &pgss_desc);
	find_columns(pgss_desc, attnums);
	slot = MakeSingleTupleTableSlot(pgss_desc, &TTSOpsMinimalTuple);
	diff_tick++;
	while (tuplestore_gettupleslot(pgss, true, false, slot))
	{
		CounterKey	key;
		Counters	now;
		bool		isnull;
		bool		found;
		Datum		qid;

		qid = slot_getattr(slot, attnums[COL_QUERYID], &isnull);
		if (isnull)
			continue;			/* another user's entry that this role may not see */
		memset(&key, 0, sizeof(key));
		key.queryid = DatumGetInt64(qid);
		key.userid = DatumGetObjectId(slot_getattr(slot, attnums[COL_USERID], &isnull));
		key.dbid = DatumGetObjectId(slot_getattr(slot, attnums[COL_DBID], &isnull));
		key.toplevel = DatumGetBool(slot_getattr(slot, attnums[COL_TOPLEVEL], &isnull));
		if ((OidIsValid(only_db) && key.dbid != only_db) || skipped_role(key.userid, skip, nskip))
			continue;
		now.calls = DatumGetInt64(slot_getattr(slot, attnums[COL_CALLS], &isnull));
		now.total_ms = DatumGetFloat8(slot_getattr(slot, attnums[COL_TOTAL], &isnull));
		now.rows = DatumGetInt64(slot_getattr(slot, attnums[COL_ROWS], &isnull));
		now.blks_hit = DatumGetInt64(slot_getattr(slot, attnums[COL_HIT], &isnull));
		now.blks_read = DatumGetInt64(slot_getattr(slot, attnums[COL_READ], &isnull));

		entry = hash_search(mirror, &key, HASH_ENTER, &found);
		entry->seen_tick = diff_tick;
		if (!found)
		{
			emit(rsinfo->setResult, rsinfo->setDesc, &key, 'n', &now, NULL);
			entry->last = now;
		}
		else if (now.calls != entry->last.calls || now.total_ms != entry->last.total_ms ||
				 now.rows != entry->last.rows || now.blks_hit != entry->last.blks_hit ||
				 now.blks_read != entry->last.blks_read)
		{
			bool		restarted = now.calls < entry->last.calls || now.total_ms < entry->last.total_ms ||
				now.rows < entry->last.rows || now.blks_hit < entry->last.blks_hit ||
				now.blks_read < entry->last.blks_read;

			emit(rsinfo->setResult, rsinfo->setDesc, &key, restarted ? 'r' : 'm', &now, &entry->last);
			entry->last = now;
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	tuplestore_end(pgss);

	/* Entries the view no longer has (evicted, or reset one by one). */
	hash_seq_init(&scan, mirror);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		if (entry->seen_tick == diff_tick)
			continue;
		emit(rsinfo->setResult, rsinfo->setDesc, &entry->key, 'g', NULL, &entry->last);
		if (hash_search(mirror, &entry->key, HASH_REMOVE, NULL) == NULL)
			elog(ERROR, "asymm: telemetry mirror corrupted");
	}
	mirror_generation = generation + 1;
	return (Datum) 0;
}
