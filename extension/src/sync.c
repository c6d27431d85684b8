/*
 * sync.c: change capture of tracked tables into the Redis sync outbox (SQL: asymm._sync_capture).
 *
 * asymm.track() puts three statement-level AFTER triggers on a tracked table (INSERT, UPDATE,
 * DELETE, each REFERENCING its transition tables) that all run this one function, with the
 * table's key columns, as recorded in asymm.sync_tables.key_columns, as trigger arguments.  Each
 * statement that changed rows adds ONE row to the outbox:
 *
 *     (slot, xid = pg_current_xact_id(), rel = TG_RELID, op 'I'/'U'/'D', keys text[])
 *
 * where a key is what the sync worker computes when it re-reads rows (control/asymm/sync/tables.py):
 * "col::text" for a one-column key, "jsonb_build_array(col, ...)::text" for a composite one.  The
 * text is produced the way the parser would evaluate those expressions: the cast to text that
 * find_coercion_pathway() picks (a cast function such as text(boolean) -> 'true', a binary
 * relabelling, or the type's output function), and jsonb_build_array itself through the fmgr.
 *
 * Why C: the capture runs inside every writing statement.  The PL/pgSQL version (one generated
 * function per table) spent most of its time starting its SQL statements (array_agg over the
 * transition table, INSERT into the outbox, SELECT of the wake flag): about 17 % of a pgbench -N
 * backend's CPU, against about 5 % here (perf, bench/RESULTS.md).  What is left is mostly the
 * outbox row itself:
 *   - the transition tuplestores are read directly, each key cast as cached per backend;
 *   - the row goes into the current slot's partition by heap_insert() and index_insert(), as
 *     catalogs are written; a prepared SPI INSERT (with a plan kept for the backend's life) cost
 *     about twice as much.  Should a DBA add a CHECK constraint or an unusual index to a slot,
 *     the executor's way (ExecConstraints, ExecInsertIndexTuples) is taken instead;
 *   - the OIDs of the outbox slots and of the wake flag are cached per backend (invalidations
 *     clear them), and so is the flag itself: every change of it sends a relcache invalidation
 *     (see wake_cached), so capture reads it (through its primary key: a sequential scan costs an
 *     lseek() for the table's size) only after the worker has flipped it, not in every statement.
 *
 * Security.  The function writes the outbox directly (no SQL, so no permission check and no row
 * security), so writers need no right at all on schema asymm: a role allowed to write a tracked
 * table captures its changes with nothing else granted.  What it can make the function write is
 * bounded by construction, whoever fires it:
 *   - it refuses to run except as an AFTER ... FOR EACH STATEMENT trigger for INSERT, UPDATE or
 *     DELETE with the matching transition tables (a direct call is refused too), so the keys are
 *     those of rows the statement really changed;
 *   - rel is always TG_RELID (or, for a partition, the ancestor that is tracked, found in the
 *     catalog: see capture_target), op always the trigger's own event, xid always the caller's
 *     own top-level transaction: nothing comes from the trigger arguments but the names of the
 *     columns to read (looked up by name, so a partition's own column order does not matter),
 *     and a wrong name only makes the statement fail;
 *   - creating such a trigger needs EXECUTE on asymm._sync_capture, which is revoked from PUBLIC
 *     (sql/99_privileges.sql), as is everything else in schema asymm: a plain role can neither
 *     insert outbox rows nor point the function at another table.
 * The worst an outbox row can cause is the worker re-reading the current rows of those keys (it
 * never trusts a row's content beyond "these keys may have changed").  TRUNCATE ('T'), heartbeats
 * ('H') and dropped tables ('X'), which the worker does act on, are written only by SECURITY
 * DEFINER SQL functions.
 *
 * Wake-up.  The transaction NOTIFYs asymm_sync (no payload, when it commits: see notified_lxid)
 * only while the worker waits for it
 * (asymm.sync_wake.listening true, or no row: the unlogged table was reset by a crash), and at most
 * once: after a notification the flag is not looked at again in the same transaction (a
 * subtransaction that rolls back takes its notification with it, and so forgets that it notified).
 *
 * Concurrent writers (perf and wait events at 4 pgbench clients on 2 cores, bench/RESULTS.md): the
 * capture's cost per transaction is the same as with one client (~5.4 vs ~5.2 us in this function
 * before the flag was cached); the writers do not queue on the outbox's heap page or its btree
 * leaf in any measurable way (BufferContent waits ~1 % of their active time, futex calls ~0.04 %
 * of their CPU), so nothing here spreads them over pages or partitions.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "datatype/timestamp.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_coerce.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "utils/xid8.h"

PG_FUNCTION_INFO_V1(asymm_sync_capture);
PG_FUNCTION_INFO_V1(asymm_sync_wake_changed);
PG_FUNCTION_INFO_V1(asymm_sync_notify);

#define SYNC_SCHEMA "asymm"
#define SYNC_CHANNEL "asymm_sync"

/* The outbox's columns (asymm.sync_outbox and its slot partitions). */
enum
{
	OUTBOX_SLOT,
	OUTBOX_XID,
	OUTBOX_REL,
	OUTBOX_OP,
	OUTBOX_KEYS,
	OUTBOX_NATTS
};

/* How a value becomes text, as the parser would build "value::text". */
typedef enum TextCastKind
{
	TEXT_RELABEL,				/* binary-compatible with text (text, varchar, domains over them) */
	TEXT_FUNC,					/* a cast function in pg_cast (bool -> 'true', bpchar -> rtrim) */
	TEXT_IO						/* the type's output function (CoerceViaIO) */
} TextCastKind;

typedef struct TextCast
{
	TextCastKind kind;
	int			nargs;			/* TEXT_FUNC: 1, or 2-3 with typmod -1 and explicit = true */
	Oid			collation;		/* the input's collation, as the parser would pass it */
	FmgrInfo	flinfo;			/* cast or output function */
} TextCast;

/* Turns a transition-table row into its key text. */
typedef struct KeyBuilder
{
	int			nkeys;
	AttrNumber	attnums[INDEX_MAX_KEYS];
	TextCast   *single;			/* nkeys == 1: the column's cast to text (cached) */
	FmgrInfo	build_array;	/* nkeys > 1: jsonb_build_array(VARIADIC "any") ... */
	FunctionCallInfo build_call;
	TextCast   *jsonb_text;		/* ... then ::text (cached) */
	bool		pin_settings;	/* a key type's text depends on session settings (see key_settings) */
	MemoryContext rowcxt;		/* per-row garbage of cast functions and jsonb */
} KeyBuilder;

/*
 * The transaction (and innermost subtransaction) that owes the worker its NOTIFY, if any.  The
 * NOTIFY itself is sent at XACT_EVENT_PRE_COMMIT (wake_xact_callback), not when the change is
 * captured: a transaction that has called Async_Notify() cannot PREPARE ("cannot PREPARE a
 * transaction that has executed LISTEN, UNLISTEN, or NOTIFY"), and one that only set this flag
 * can.  CommitTransaction() runs the PRE_COMMIT callbacks before PreCommit_Notify() (xact.c), so
 * the notification still goes out with the commit, once.  PrepareTransaction() runs
 * PRE_PREPARE instead, where nothing is sent: a prepared transaction wakes no one, and the
 * worker finds its changes by its poll once COMMIT PREPARED has run (at most a pulse later; the
 * prepared transaction holds the horizon back until then anyway).
 */
static LocalTransactionId notified_lxid = InvalidLocalTransactionId;
static SubTransactionId notified_subid = InvalidSubTransactionId;

/*
 * Partitions: a statement on a partition fires the partition's statement triggers, never its
 * parent's, so asymm.track() of a partitioned table puts the capture triggers on every partition
 * too, and the change is recorded under the tracked table: the topmost ancestor (parent,
 * grandparent, ...; get_partition_ancestors, i.e. pg_inherits) that has a capture trigger of its
 * own (a trigger of this very function, fn_oid).  Derived from the catalog, never from the
 * trigger's arguments, so the rel of such a row is always the partition itself or one of its
 * ancestors.  Cached per partition: the walk opens every ancestor; any relcache invalidation
 * (ATTACH, DETACH, CREATE/DROP TRIGGER all send one) empties the cache.  A table that is no
 * partition (relispartition false) takes none of this: its own oid, as before.
 */
#define ANCESTOR_CACHE_SIZE 64

typedef struct AncestorEntry
{
	Oid			relid;
	Oid			fn_oid;
	Oid			target;
} AncestorEntry;

static AncestorEntry ancestor_cache[ANCESTOR_CACHE_SIZE];
static int	ancestor_cache_used = 0;

/*
 * Backend-local caches, so that a single-row statement does no catalog lookup of its own:
 * - the OIDs of schema asymm, the two outbox slots and the wake flag (dropped, renamed or
 *   re-created objects send invalidations, which clear it);
 * - how a key type becomes text (a cast or type change clears it).  Invalidations can arrive
 *   in the middle of a capture (any lock taken processes them), so they only mark the cache
 *   stale; it is emptied at the start of the next capture, when no one uses its entries.
 */
typedef struct SyncRels
{
	bool		valid;
	Oid			nsp;
	Oid			outbox[2];
	Oid			wake;
} SyncRels;

static SyncRels sync_rels;

/*
 * The wake flag as this backend last read it (asymm.sync_wake.listening; true for "no row").
 * Reading the flag cost about 1.5 us per statement (index scan, snapshot, two relations opened:
 * a third of this function's time, perf at 4 clients), for a value that changes only when the
 * worker switches between draining and waiting.  So it is cached, and every committed change of the
 * flag table sends a relcache invalidation of it (its statement trigger,
 * asymm._sync_wake_changed), which clears the cache in every backend: capture processes pending
 * invalidations first, so it sees a committed change as soon as it would have read it, short of
 * the instant between the worker's commit and its invalidation (the same race the worker already
 * covers for a flag read just before its commit: its next poll, a pulse away).  A change made in
 * the writer's own transaction clears the cache at the next command, and again if it is rolled
 * back (PostgreSQL replays a transaction's invalidations locally on abort).  wake_generation
 * counts invalidations, so that a value read while one arrived is not kept.
 */
static bool wake_cached = false;
static bool wake_listening = true;
static uint64 wake_generation = 0;

static void
wake_cache_clear(void)
{
	wake_cached = false;
	wake_generation++;
}

#define CAST_CACHE_SIZE 16

typedef struct CastCacheEntry
{
	Oid			typid;
	Oid			collation;
	TextCast	cast;
} CastCacheEntry;

static CastCacheEntry cast_cache[CAST_CACHE_SIZE];
static int	cast_cache_used = 0;
static bool cast_cache_stale = false;
static MemoryContext cast_cache_cxt = NULL;
static bool callbacks_registered = false;
static int	capture_depth = 0;		/* > 0 inside a capture (a key's cast may write a tracked table) */

static void
sync_rels_relcache_callback(Datum arg, Oid relid)
{
	ancestor_cache_used = 0;	/* plain oids: nothing points into it */
	if (relid == InvalidOid || relid == sync_rels.outbox[0] || relid == sync_rels.outbox[1]
		|| relid == sync_rels.wake)
	{
		sync_rels.valid = false;
		wake_cache_clear();
	}
}

static void
sync_rels_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	sync_rels.valid = false;
	wake_cache_clear();
}

static void
cast_cache_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	cast_cache_stale = true;
}

static void
notified_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	if (notified_lxid != MyProc->lxid)
		return;
	if (notified_subid != mySubid)
		return;
	if (event == SUBXACT_EVENT_COMMIT_SUB)
		notified_subid = parentSubid;	/* the notification now belongs to the parent */
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		notified_lxid = InvalidLocalTransactionId;	/* rolled back with its notification */
		notified_subid = InvalidSubTransactionId;
	}
}

/* Commit: send the NOTIFY owed (see notified_lxid); prepare: send nothing. */
static void
wake_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (notified_lxid == MyProc->lxid)
			{
				notified_lxid = InvalidLocalTransactionId;
				notified_subid = InvalidSubTransactionId;
				Async_Notify(SYNC_CHANNEL, "");
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			notified_lxid = InvalidLocalTransactionId;
			notified_subid = InvalidSubTransactionId;
			break;
		default:
			break;				/* PRE_PREPARE included: a prepared transaction cannot NOTIFY */
	}
}

/* Whether rel has a trigger of the capture function (fn_oid). */
static bool
has_capture_trigger(Relation rel, Oid fn_oid)
{
	TriggerDesc *desc = rel->trigdesc;
	int			i;

	if (desc == NULL)
		return false;
	for (i = 0; i < desc->numtriggers; i++)
		if (desc->triggers[i].tgfoid == fn_oid)
			return true;
	return false;
}

/*
 * The table a change of rel is recorded under: rel itself, or for a partition its topmost
 * ancestor with a capture trigger (see ancestor_cache).
 */
static Oid
capture_target(Relation rel, Oid fn_oid)
{
	Oid			relid = RelationGetRelid(rel);
	Oid			target = relid;
	List	   *ancestors;
	ListCell   *lc;
	int			i;

	if (!rel->rd_rel->relispartition)
		return relid;
	for (i = 0; i < ancestor_cache_used; i++)
		if (ancestor_cache[i].relid == relid && ancestor_cache[i].fn_oid == fn_oid)
			return ancestor_cache[i].target;
	ancestors = get_partition_ancestors(relid);
	foreach(lc, ancestors)
	{
		/* (the statement holds a lock on rel; its partition constraint check locks these too) */
		Relation	ancestor = table_open(lfirst_oid(lc), AccessShareLock);

		if (has_capture_trigger(ancestor, fn_oid))
			target = RelationGetRelid(ancestor);	/* the last one found is the topmost */
		table_close(ancestor, AccessShareLock);
	}
	list_free(ancestors);
	/* opening the ancestors may have processed invalidations: the cache starts from empty then */
	if (ancestor_cache_used == ANCESTOR_CACHE_SIZE)
		ancestor_cache_used = 0;
	ancestor_cache[ancestor_cache_used].relid = relid;
	ancestor_cache[ancestor_cache_used].fn_oid = fn_oid;
	ancestor_cache[ancestor_cache_used].target = target;
	ancestor_cache_used++;
	return target;
}

static void
text_cast_init(TextCast *cast, Oid typid, Oid collation)
{
	Oid			funcid = InvalidOid;
	Oid			outfunc;
	bool		varlena;

	cast->collation = collation;
	switch (find_coercion_pathway(TEXTOID, typid, COERCION_EXPLICIT, &funcid))
	{
		case COERCION_PATH_RELABELTYPE:
			cast->kind = TEXT_RELABEL;
			break;
		case COERCION_PATH_FUNC:
			cast->kind = TEXT_FUNC;
			cast->nargs = get_func_nargs(funcid);
			fmgr_info_cxt(funcid, &cast->flinfo, CurrentMemoryContext);
			break;
		case COERCION_PATH_COERCEVIAIO:
			cast->kind = TEXT_IO;
			getTypeOutputInfo(typid, &outfunc, &varlena);
			fmgr_info_cxt(outfunc, &cast->flinfo, CurrentMemoryContext);
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_COERCE),
					 errmsg("asymm sync: a key of type %s cannot be cast to text", format_type_be(typid)),
					 errhint("Track tables whose primary key columns have a cast to text.")));
	}
}

/*
 * value::text, allocated in the current memory context.  A cast function may return a value that
 * points into its input (which lives in the tuplestore's read buffer): callers copy TEXT_FUNC
 * results out of a per-row context.
 */
static Datum
text_cast(TextCast *cast, Datum value)
{
	char	   *str;
	Datum		result;

	switch (cast->kind)
	{
		case TEXT_RELABEL:
			return PointerGetDatum(PG_DETOAST_DATUM_COPY(value));
		case TEXT_FUNC:
			if (cast->nargs == 1)
				return FunctionCall1Coll(&cast->flinfo, cast->collation, value);
			if (cast->nargs == 2)
				return FunctionCall2Coll(&cast->flinfo, cast->collation, value, Int32GetDatum(-1));
			return FunctionCall3Coll(&cast->flinfo, cast->collation, value, Int32GetDatum(-1),
									 BoolGetDatum(true));
		case TEXT_IO:
			str = OutputFunctionCall(&cast->flinfo, value);
			result = PointerGetDatum(cstring_to_text(str));
			pfree(str);
			return result;
	}
	pg_unreachable();
}

/* The cast of typid to text, from the backend's cache (filled on first use). */
static TextCast *
text_cast_cached(Oid typid, Oid collation)
{
	MemoryContext old;
	CastCacheEntry *entry;
	int			i;

	for (i = 0; i < cast_cache_used; i++)
		if (cast_cache[i].typid == typid && cast_cache[i].collation == collation)
			return &cast_cache[i].cast;
	if (cast_cache_used == CAST_CACHE_SIZE)
	{
		/*
		 * Rare (many key types in one session): this capture's cast lives in its own memory,
		 * and the cache starts over at the next one (entries may be in use right now).
		 */
		TextCast   *cast = palloc(sizeof(TextCast));

		text_cast_init(cast, typid, collation);
		cast_cache_stale = true;
		return cast;
	}
	entry = &cast_cache[cast_cache_used];
	old = MemoryContextSwitchTo(cast_cache_cxt);	/* fmgr_info_cxt: fn_extra lives as long */
	text_cast_init(&entry->cast, typid, collation);
	MemoryContextSwitchTo(old);
	entry->typid = typid;
	entry->collation = collation;
	cast_cache_used++;
	return &entry->cast;
}

/*
 * The settings the canonical key text is computed under (control/asymm/sync/keys.py, KEY_SETTINGS,
 * names the same list; tests/test_sync_canonical_keys.py checks that they agree).  Output
 * functions read them (TimeZone for timestamptz, DateStyle, IntervalStyle, extra_float_digits for
 * floats, bytea_output), so two writers with different sessions would otherwise name one row by two
 * Redis keys.  Set only around the keys of tables that need them (key_text_reads_settings): saving
 * and restoring five settings costs about 8 us a statement, as much as the rest of the capture,
 * and int, text and uuid keys, the usual ones, never read them.
 */
static const char *const key_settings[][2] = {
	{"TimeZone", "UTC"},
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"extra_float_digits", "1"},
	{"bytea_output", "hex"},
};

/* Whether the text of a key of type typid (as ::text or inside jsonb) may depend on a setting. */
static bool
key_text_reads_settings(Oid typid)
{
	switch (getBaseType(typid))
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case OIDOID:
		case BOOLOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
		case CHAROID:
		case UUIDOID:
			return false;
		default:
			return true;
	}
}

/*
 * Give this backend the key settings until the returned GUC nest level is closed with
 * AtEOXact_GUC(true, level); an error on the way is unwound by the (sub)transaction's abort, as
 * for a function's SET clause.
 */
static int
pin_key_settings(void)
{
	int			level = NewGUCNestLevel();
	int			i;

	for (i = 0; i < (int) lengthof(key_settings); i++)
		(void) set_config_option(key_settings[i][0], key_settings[i][1], PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/* Resolve the key columns named by the trigger's arguments (asymm.track() sets them). */
static void
key_builder_init(KeyBuilder *kb, Relation rel, Trigger *trigger)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Form_pg_attribute attrs[INDEX_MAX_KEYS];
	int			i;

	if (trigger->tgnargs < 1 || trigger->tgnargs > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("asymm sync: trigger \"%s\" on %s must name the key columns as arguments",
						trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Re-run asymm.track() on the table to recreate its triggers.")));
	kb->nkeys = trigger->tgnargs;
	for (i = 0; i < kb->nkeys; i++)
	{
		const char *name = trigger->tgargs[i];
		int			a;

		kb->attnums[i] = InvalidAttrNumber;
		for (a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			{
				kb->attnums[i] = att->attnum;
				attrs[i] = att;
				break;
			}
		}
		if (kb->attnums[i] == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("asymm sync: key column \"%s\" of %s does not exist",
							name, RelationGetRelationName(rel)),
					 errhint("A key column was renamed or dropped: re-run asymm.track() on the table.")));
	}

	kb->pin_settings = false;
	for (i = 0; i < kb->nkeys; i++)
		kb->pin_settings |= key_text_reads_settings(attrs[i]->atttypid);
	kb->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "asymm capture row", ALLOCSET_SMALL_SIZES);
	if (kb->nkeys == 1)
	{
		kb->single = text_cast_cached(attrs[0]->atttypid, attrs[0]->attcollation);
		return;
	}

	/*
	 * jsonb_build_array is variadic "any": it learns its arguments' types from the calling
	 * expression, so give it one (constants of the key columns' types stand for the columns).
	 */
	{
		List	   *args = NIL;
		FuncExpr   *call;

		for (i = 0; i < kb->nkeys; i++)
			args = lappend(args, makeNullConst(attrs[i]->atttypid, attrs[i]->atttypmod, attrs[i]->attcollation));
		call = makeFuncExpr(F_JSONB_BUILD_ARRAY_ANY, JSONBOID, args, InvalidOid, InvalidOid,
							COERCE_EXPLICIT_CALL);
		fmgr_info(F_JSONB_BUILD_ARRAY_ANY, &kb->build_array);
		fmgr_info_set_expr((Node *) call, &kb->build_array);
		kb->build_call = palloc0(SizeForFunctionCallInfo(kb->nkeys));
		InitFunctionCallInfoData(*kb->build_call, &kb->build_array, kb->nkeys, InvalidOid, NULL, NULL);
		kb->jsonb_text = text_cast_cached(JSONBOID, InvalidOid);
	}
}

/* The key text of the row in slot, allocated in the caller's memory context. */
static Datum
key_of_row(KeyBuilder *kb, TupleTableSlot *slot)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		value;
	Datum		result;
	bool		isnull;
	int			i;

	if (kb->nkeys == 1)
	{
		value = slot_getattr(slot, kb->attnums[0], &isnull);
		if (isnull)				/* a primary key column: cannot happen */
			elog(ERROR, "asymm sync: NULL key in a transition table");
		if (kb->single->kind != TEXT_FUNC)
			return text_cast(kb->single, value);	/* always a fresh copy */
		MemoryContextSwitchTo(kb->rowcxt);
		value = text_cast(kb->single, value);
	}
	else
	{
		FunctionCallInfo call = kb->build_call;

		for (i = 0; i < kb->nkeys; i++)
			call->args[i].value = slot_getattr(slot, kb->attnums[i], &call->args[i].isnull);
		MemoryContextSwitchTo(kb->rowcxt);
		call->isnull = false;
		value = FunctionCallInvoke(call);
		value = text_cast(kb->jsonb_text, value);
	}
	MemoryContextSwitchTo(caller);
	result = PointerGetDatum(PG_DETOAST_DATUM_COPY(value));
	MemoryContextReset(kb->rowcxt);
	return result;
}

static bool
same_text(Datum a, Datum b)
{
	text	   *x = DatumGetTextPP(a);
	text	   *y = DatumGetTextPP(b);

	return VARSIZE_ANY_EXHDR(x) == VARSIZE_ANY_EXHDR(y)
		&& memcmp(VARDATA_ANY(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(x)) == 0;
}

/*
 * Append the keys of a transition table to keys[*n..].  With pair_with (UPDATE's old rows, read
 * after the new ones), the old key of row i is left out when it equals the new key of row i: both
 * tables receive an updated row's old and new versions together, so that is the common "key did
 * not change" case; should the pairing ever differ, a key is only kept twice (the worker
 * de-duplicates anyway), never lost.
 */
static void
append_keys(KeyBuilder *kb, Tuplestorestate *store, TupleTableSlot *slot, Datum *keys, int *n,
			int pair_with)
{
	int			row = 0;

	/* Our own read pointer: another trigger may be reading the same transition table. */
	tuplestore_select_read_pointer(store, tuplestore_alloc_read_pointer(store, EXEC_FLAG_REWIND));
	tuplestore_rescan(store);
	while (tuplestore_gettupleslot(store, true, false, slot))
	{
		Datum		key = key_of_row(kb, slot);

		if (row < pair_with && same_text(key, keys[row]))
			pfree(DatumGetPointer(key));
		else
			keys[(*n)++] = key;
		row++;
	}
	ExecClearTuple(slot);
}

/* Look the extension's tables up (when the cache is empty or was invalidated). */
static void
sync_rels_lookup(void)
{
	static const char *const outbox_names[2] = {"sync_outbox_0", "sync_outbox_1"};
	int			i;

	if (sync_rels.valid)
		return;
	sync_rels.nsp = get_namespace_oid(SYNC_SCHEMA, false);
	for (i = 0; i < 2; i++)
	{
		sync_rels.outbox[i] = get_relname_relid(outbox_names[i], sync_rels.nsp);
		if (!OidIsValid(sync_rels.outbox[i]))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("asymm sync: table %s.%s is missing", SYNC_SCHEMA, outbox_names[i]),
					 errhint("The asymm extension is damaged: reinstall it.")));
	}
	sync_rels.wake = get_relname_relid("sync_wake", sync_rels.nsp);
	/* no wake flag (never, short of damage): look again next time, and notify meanwhile */
	sync_rels.valid = OidIsValid(sync_rels.wake);
}

/*
 * Open one of the extension's tables by its cached OID.  Taking the lock processes pending
 * invalidations: if they concern it (renamed, re-created), look it up again.
 */
static Relation
open_sync_rel(Oid *relid, LOCKMODE mode)
{
	for (;;)
	{
		Relation	rel;

		sync_rels_lookup();
		if (!OidIsValid(*relid))
			return NULL;
		rel = table_open(*relid, mode);
		if (sync_rels.valid || sync_rels.wake == InvalidOid)
			return rel;
		table_close(rel, NoLock);
	}
}

/* The outbox slot written by transactions that start now: asymm.sync_slot(), i.e.
 * (round(extract(epoch FROM now())) / 10) % 2, rounding half up as numeric -> bigint does. */
static int16
current_slot(void)
{
	int64		usec = GetCurrentTransactionStartTimestamp()
		+ (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	int64		sec = (usec + USECS_PER_SEC / 2) / USECS_PER_SEC;

	return (int16) ((sec / 10) % 2);
}

static void
damaged_outbox(Relation outbox)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("asymm sync: %s is not an outbox slot as asymm created it", RelationGetRelationName(outbox)),
			 errhint("The asymm extension is damaged: reinstall it.")));
}

/*
 * The general way: what INSERT does for a table (constraints, every kind of index), minus
 * planning, permission checks and row security.  Used when a DBA added a CHECK constraint or an
 * unusual index to an outbox slot.
 */
static void
insert_outbox_row_executor(Relation outbox, Datum *values, bool *nulls)
{
	TupleDesc	desc = RelationGetDescr(outbox);
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	TupleTableSlot *slot;

	/* a range table as logical replication's apply worker builds one (constraint errors need it) */
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(outbox);
	rte->relkind = outbox->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(estate, list_make1(rte));
	estate->es_output_cid = GetCurrentCommandId(true);
	InitResultRelInfo(rri, outbox, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	slot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * desc->natts);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * desc->natts);
	ExecStoreVirtualTuple(slot);
	if (desc->constr)
		ExecConstraints(rri, slot, estate);
	simple_table_tuple_insert(outbox, slot);
	if (rri->ri_NumIndices > 0)
		list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL));
	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
}

/*
 * One row into the slot's partition.  The outbox as asymm creates it (a heap, NOT NULL columns,
 * one plain btree on xid) takes the short way: heap_insert() and index_insert(), as catalogs are
 * written (CatalogTupleInsert), with no executor state at all.
 */
static void
insert_outbox_row(Oid relid, char op, ArrayType *keys)
{
	static const Oid expected[OUTBOX_NATTS] = {INT2OID, XID8OID, OIDOID, CHAROID, TEXTARRAYOID};
	int16		slotno = current_slot();
	Relation	outbox = open_sync_rel(&sync_rels.outbox[slotno], RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(outbox);
	Datum		values[OUTBOX_NATTS];
	bool		nulls[OUTBOX_NATTS] = {false, false, false, false, false};
	List	   *index_oids;
	int			nindexes;
	Relation   *indexes;
	IndexInfo **infos;
	bool		simple;
	HeapTuple	tuple;
	ListCell   *lc;
	int			i;

	if (outbox->rd_rel->relkind != RELKIND_RELATION || desc->natts != OUTBOX_NATTS)
		damaged_outbox(outbox);
	for (i = 0; i < OUTBOX_NATTS; i++)
		if (TupleDescAttr(desc, i)->attisdropped || TupleDescAttr(desc, i)->atttypid != expected[i])
			damaged_outbox(outbox);

	values[OUTBOX_SLOT] = Int16GetDatum(slotno);
	values[OUTBOX_XID] = FullTransactionIdGetDatum(GetTopFullTransactionId());
	values[OUTBOX_REL] = ObjectIdGetDatum(relid);
	values[OUTBOX_OP] = CharGetDatum(op);
	values[OUTBOX_KEYS] = PointerGetDatum(keys);

	simple = outbox->rd_rel->relam == HEAP_TABLE_AM_OID
		&& (desc->constr == NULL || desc->constr->num_check == 0);
	index_oids = RelationGetIndexList(outbox);
	nindexes = list_length(index_oids);
	indexes = palloc(sizeof(Relation) * (nindexes + 1));
	infos = palloc(sizeof(IndexInfo *) * (nindexes + 1));
	i = 0;
	foreach(lc, index_oids)
	{
		indexes[i] = index_open(lfirst_oid(lc), RowExclusiveLock);
		infos[i] = BuildIndexInfo(indexes[i]);
		if (infos[i]->ii_Expressions != NIL || infos[i]->ii_Predicate != NIL
			|| infos[i]->ii_ExclusionOps != NULL || infos[i]->ii_Unique)
			simple = false;
		i++;
	}

	if (!simple)
	{
		for (i = 0; i < nindexes; i++)
			index_close(indexes[i], RowExclusiveLock);
		insert_outbox_row_executor(outbox, values, nulls);
	}
	else
	{
		tuple = heap_form_tuple(desc, values, nulls);
		simple_heap_insert(outbox, tuple);
		for (i = 0; i < nindexes; i++)
		{
			Datum		ivalues[INDEX_MAX_KEYS];
			bool		inulls[INDEX_MAX_KEYS];
			int			k;

			if (infos[i]->ii_ReadyForInserts)
			{
				for (k = 0; k < infos[i]->ii_NumIndexAttrs; k++)
				{
					AttrNumber	attnum = infos[i]->ii_IndexAttrNumbers[k];

					ivalues[k] = values[attnum - 1];	/* plain columns only (checked above) */
					inulls[k] = nulls[attnum - 1];
				}
				index_insert(indexes[i], ivalues, inulls, &tuple->t_self, outbox, UNIQUE_CHECK_NO,
							 false, infos[i]);
			}
			/* kept locked until the end of the transaction, as the executor does (and as the
			 * slot itself is): the next statement's capture then need not lock it again */
			index_close(indexes[i], NoLock);
		}
	}
	table_close(outbox, NoLock);	/* the lock is kept until the end of the transaction */
}

/*
 * asymm.sync_wake.listening as last committed: no row (after a crash) counts as true.  From the
 * backend's cache while no invalidation of the flag table has arrived (see wake_cached).
 */
static bool
worker_listens(void)
{
	Relation	wake;
	Snapshot	snapshot;
	TupleTableSlot *slot;
	bool		listening = true;
	bool		found;
	Oid			pkey;
	uint64		generation;

	/* a flag committed since the last look has sent its invalidation: take it in now */
	AcceptInvalidationMessages();
	if (wake_cached && sync_rels.valid)
		return wake_listening;
	generation = wake_generation;
	wake = open_sync_rel(&sync_rels.wake, AccessShareLock);
	if (wake == NULL)
		return true;
	if (RelationGetDescr(wake)->natts < 2 || TupleDescAttr(RelationGetDescr(wake), 1)->atttypid != BOOLOID)
	{
		table_close(wake, AccessShareLock);
		return true;
	}
	/* The latest committed flag, even in a REPEATABLE READ transaction. */
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(wake, NULL);
	pkey = RelationGetPrimaryKeyIndex(wake);
	if (OidIsValid(pkey))
	{
		/* through its primary key: unlike a sequential scan, no lseek() for the table's size */
		Relation	index = index_open(pkey, AccessShareLock);
		IndexScanDesc scan = index_beginscan(wake, index, snapshot, 0, 0);

		index_rescan(scan, NULL, 0, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, slot);
		index_endscan(scan);
		index_close(index, AccessShareLock);
	}
	else
	{
		TableScanDesc scan = table_beginscan(wake, snapshot, 0, NULL);

		found = table_scan_getnextslot(scan, ForwardScanDirection, slot);
		table_endscan(scan);
	}
	if (found)
	{
		bool		isnull;
		Datum		flag = slot_getattr(slot, 2, &isnull);

		listening = isnull || DatumGetBool(flag);
	}
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	table_close(wake, AccessShareLock);
	/* kept unless an invalidation came in meanwhile (the value may predate it) */
	if (generation == wake_generation && sync_rels.valid)
	{
		wake_listening = listening;
		wake_cached = true;
	}
	return listening;
}

/* Owe the worker a NOTIFY asymm_sync at commit (see notified_lxid). */
static void
owe_notify(void)
{
	notified_lxid = MyProc->lxid;
	notified_subid = GetCurrentSubTransactionId();
}

/* NOTIFY asymm_sync once per transaction (at its commit), only while the worker waits for it. */
static void
wake_worker(void)
{
	if (notified_lxid == MyProc->lxid || !worker_listens())
		return;
	owe_notify();
}

/* The statement's keys as a text[]: the new rows', then (UPDATE) the old rows' that differ. */
static ArrayType *
collect_keys(Relation rel, Trigger *trigger, Tuplestorestate *first, Tuplestorestate *second, int64 rows)
{
	KeyBuilder	kb;
	TupleTableSlot *slot;
	Datum	   *keys = palloc(sizeof(Datum) * rows);
	int			n = 0;
	int			settings_level = -1;

	key_builder_init(&kb, rel, trigger);
	if (kb.pin_settings)
		settings_level = pin_key_settings();
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	append_keys(&kb, first, slot, keys, &n, 0);
	if (second != NULL)
		append_keys(&kb, second, slot, keys, &n, n);
	ExecDropSingleTupleTableSlot(slot);
	if (settings_level >= 0)
		AtEOXact_GUC(true, settings_level);
	return construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT);
}

/* collect_keys(), counted in capture_depth (which keeps the cast cache in place meanwhile). */
static ArrayType *
collect_keys_nested(Relation rel, Trigger *trigger, Tuplestorestate *first, Tuplestorestate *second,
					int64 rows)
{
	ArrayType  *keys;

	capture_depth++;
	PG_TRY();
	{
		keys = collect_keys(rel, trigger, first, second, rows);
	}
	PG_FINALLY();
	{
		capture_depth--;
	}
	PG_END_TRY();
	return keys;
}

/* First call in this backend: callbacks that keep the caches and the notify flag right. */
static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	cast_cache_cxt = AllocSetContextCreate(TopMemoryContext, "asymm capture casts", ALLOCSET_SMALL_SIZES);
	CacheRegisterRelcacheCallback(sync_rels_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, sync_rels_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(CASTSOURCETARGET, cast_cache_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, cast_cache_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, cast_cache_syscache_callback, (Datum) 0);
	RegisterSubXactCallback(notified_subxact_callback, NULL);
	RegisterXactCallback(wake_xact_callback, NULL);
	callbacks_registered = true;
}

Datum
asymm_sync_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata;
	Tuplestorestate *first;
	Tuplestorestate *second = NULL;
	char		op;
	int64		rows;
	Relation	rel;
	Oid			target;
	MemoryContext cxt;
	MemoryContext caller;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("asymm._sync_capture() must be called as a trigger"),
				 errhint("asymm.track() installs it on a table.")));
	trigdata = (TriggerData *) fcinfo->context;
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("asymm._sync_capture() must be fired AFTER ... FOR EACH STATEMENT"),
				 errhint("Use asymm.track() to install the capture triggers.")));
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		op = 'I';
		first = trigdata->tg_newtable;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		op = 'U';
		first = trigdata->tg_newtable;
		second = trigdata->tg_oldtable;
	}
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		op = 'D';
		first = trigdata->tg_oldtable;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("asymm._sync_capture() captures INSERT, UPDATE and DELETE only"),
				 errhint("Use asymm.track() to install the capture triggers.")));
	if (first == NULL || (op == 'U' && second == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("asymm._sync_capture() needs the statement's transition tables"),
				 errhint("Use asymm.track() to install the capture triggers (REFERENCING OLD/NEW TABLE).")));

	rows = tuplestore_tuple_count(first) + (second ? tuplestore_tuple_count(second) : 0);
	if (rows == 0)
		return PointerGetDatum(NULL);	/* nothing changed: no row, no wake-up */
	if ((Size) rows > MaxAllocSize / sizeof(Datum))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("asymm sync: too many rows changed by one statement (%lld)", (long long) rows),
				 errhint("Split the statement.")));

	register_callbacks();
	if (cast_cache_stale && capture_depth == 0)
	{
		cast_cache_used = 0;
		MemoryContextReset(cast_cache_cxt);
		cast_cache_stale = false;
	}

	rel = trigdata->tg_relation;
	target = capture_target(rel, fcinfo->flinfo->fn_oid);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "asymm capture", ALLOCSET_DEFAULT_SIZES);
	caller = MemoryContextSwitchTo(cxt);

	insert_outbox_row(target, op, collect_keys_nested(rel, trigdata->tg_trigger, first, second, rows));
	wake_worker();

	MemoryContextSwitchTo(caller);
	MemoryContextDelete(cxt);
	return PointerGetDatum(NULL);
}

/*
 * Statement trigger of asymm.sync_wake (INSERT, UPDATE, DELETE): a relcache invalidation of the
 * flag table, sent when the change commits, so that every backend drops its cached flag (see
 * wake_cached).  TRUNCATE sends one by itself.
 */
Datum
asymm_sync_wake_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("asymm._sync_wake_changed() must be called as a trigger")));
	trigdata = (TriggerData *) fcinfo->context;
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

/*
 * asymm.sync_notify(): wake the sync worker when this transaction commits, whatever the wake flag
 * says (track, TRUNCATE, renames, heartbeats).  The same path as capture's (see notified_lxid):
 * one NOTIFY asymm_sync at commit, none at PREPARE TRANSACTION, and a subtransaction that rolls
 * back takes its share with it.
 */
Datum
asymm_sync_notify(PG_FUNCTION_ARGS)
{
	register_callbacks();
	if (notified_lxid != MyProc->lxid)
		owe_notify();
	PG_RETURN_VOID();
}
