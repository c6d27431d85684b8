/*
 * planas.c: plan a statement asymm did not write as the role that wrote it (asymm._explain_as).
 *
 * Why: the advisor, asymm.infer() and asymm.coherence() plan statement texts taken from
 * pg_stat_statements, and planning runs code: the planner constant-folds IMMUTABLE functions, and
 * one a role defined can call anything.  Planned in the caller's session with the caller's rights,
 * that code would run as the caller, often a superuser.  Here the statement is parsed and analysed
 * as its author (names resolve with the author's rights and search_path) and rewritten and planned
 * as asymm_planner, a role with no rights (see planner_role()), both in a security-restricted
 * operation, which is PostgreSQL's own answer to the same problem
 * (VACUUM, ANALYZE, CREATE INDEX and REFRESH MATERIALIZED VIEW run the table owner's code that
 * way): SetUserIdAndSecContext(author, SECURITY_LOCAL_USERID_CHANGE |
 * SECURITY_RESTRICTED_OPERATION) plus a GUC nest level that is rolled back afterwards.  Inside it
 * the code cannot change role or session_authorization (RESET ROLE, SET ROLE, SET SESSION
 * AUTHORIZATION, set_config('role', ...) all fail), cannot create temporary objects (which could
 * shadow the caller's names afterwards), cannot PREPARE, DEALLOCATE, LISTEN, DISCARD or open
 * cursors WITH HOLD (PostgreSQL 15 refuses each of these in a security-restricted operation:
 * checked by tests/test_security_planning.py), and any GUC it sets is undone.  A plain SET ROLE in
 * a rolled-back transaction would not do: the code could RESET ROLE itself.
 *
 * The statement is parsed here (exactly one SELECT, INSERT, UPDATE, DELETE, WITH or VALUES: the
 * raw parse tree is checked, not the text), analysed and planned as the author with the
 * search_path a new session of the author would have (pg_db_role_setting, else the server's
 * default), and EXPLAINed without ever being executed.  The EXPLAIN goes through ProcessUtility so
 * that HypoPG, which only injects its hypothetical indexes while an EXPLAIN (without ANALYZE) is
 * running, prices them: the advisor creates hypothetical indexes and plans each statement many
 * times.  Each call re-parses the text; nothing is cached between calls, so a catalog change (even
 * one the planned code makes) can never leave a stale tree behind, and a generic plan always sees
 * the current hypothetical indexes.
 *
 * Generic and custom plans, as PREPARE + EXPLAIN EXECUTE made them: without values the planner
 * sees no parameter values (a generic plan) while the executor's start-up (partition pruning at
 * initialisation) sees NULLs, as EXPLAIN EXECUTE name(NULL, ...) under force_generic_plan did; with
 * values, they are constants the planner folds in (a custom plan).
 *
 * The caller must be allowed to become the author (is_member_of_role, both for the current user
 * and for the role outside any SECURITY DEFINER function), so a superuser may plan anyone's
 * statement and any other role only those of roles it is a member of: never more rights than the
 * caller has, never more than the author has.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_db_role_setting.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/params.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/analyze.h"
#include "parser/parse_type.h"
#include "parser/parser.h"
#include "tcop/dest.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/catcache.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(asymm_explain_as);
PG_FUNCTION_INFO_V1(asymm_param_types_as);
PG_FUNCTION_INFO_V1(asymm_plan_as_refusal);

#define STATEMENT_HINT "Give the text of one SELECT, INSERT, UPDATE, DELETE, WITH or VALUES statement, with constants or $n parameters."

/* -- the statement ----------------------------------------------------------------------------- */

static void
refuse_statement(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid query for planning: %s", why),
			 errhint(STATEMENT_HINT)));
}

/* The one raw statement of the text, if it is a statement that may be planned (never SELECT INTO). */
static RawStmt *
single_statement(const char *query)
{
	List	   *stmts = raw_parser(query, RAW_PARSE_DEFAULT);
	RawStmt    *raw;
	Node	   *node;

	if (list_length(stmts) != 1)
		refuse_statement(list_length(stmts) == 0 ? "it is empty" : "it holds more than one statement");
	raw = linitial_node(RawStmt, stmts);
	node = raw->stmt;
	switch (nodeTag(node))
	{
		case T_SelectStmt:
			{
				SelectStmt *leaf = (SelectStmt *) node;

				/* SELECT ... INTO (CREATE TABLE AS) hides in the leftmost leaf of a set operation */
				while (leaf->op != SETOP_NONE && leaf->larg != NULL)
					leaf = leaf->larg;
				if (leaf->intoClause != NULL)
					refuse_statement("SELECT ... INTO creates a table");
				break;
			}
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
			break;
		default:
			refuse_statement("it must be one SELECT, INSERT, UPDATE, DELETE, WITH or VALUES statement");
	}
	return raw;
}

/* -- the author -------------------------------------------------------------------------------- */

/* Whether the caller may become the author: the current user and the one outside any SECURITY DEFINER function. */
static bool
may_assume(Oid author)
{
	Oid			current = GetUserId();
	Oid			outer = GetOuterUserId();

	return is_member_of_role(current, author) && (outer == current || is_member_of_role(outer, author));
}

/* The author's name; an ERROR when the role is gone or the caller may not become it. */
static char *
assumable_author(Oid author)
{
	char	   *name = GetUserNameFromId(author, true);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u no longer exists", author),
				 errhint("The statement is planned only as the role that ran it; that role was dropped.")));
	if (!may_assume(author))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot assume role \"%s\" to plan its statement", name),
				 errhint("Statements are planned only as the role that ran them: run this as a superuser, or GRANT \"%s\" TO the role that runs it.",
						 name)));
	return name;
}

/* The search_path in "name=value" entries of a pg_db_role_setting.setconfig array, or NULL. */
static char *
search_path_in(Datum setconfig)
{
	ArrayType  *array = DatumGetArrayTypeP(setconfig);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	   *found = NULL;

	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *entry;

		if (nulls[i])
			continue;
		entry = TextDatumGetCString(elems[i]);
		if (pg_strncasecmp(entry, "search_path=", strlen("search_path=")) == 0)
			found = entry + strlen("search_path=");
	}
	return found;
}

/* The server's search_path: the configuration file's (or the command line's) value, else the built-in one. */
static const char *
server_search_path(void)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
	{
		if (strcmp(vars[i]->name, "search_path") == 0 && vars[i]->vartype == PGC_STRING)
		{
			struct config_string *conf = (struct config_string *) vars[i];

			/* reset_val is the session's login value: the server's unless a role/database setting or the client set it */
			if (conf->gen.reset_source <= PGC_S_ARGV && conf->reset_val != NULL)
				return conf->reset_val;
			return conf->boot_val;
		}
	}
	return "\"$user\", public";
}

/*
 * The search_path a new session of the role would start with in this database: the most specific
 * of ALTER ROLE ... IN DATABASE, ALTER ROLE, ALTER DATABASE and ALTER ROLE ALL, else the server's.
 */
static const char *
author_search_path(Oid author)
{
	Oid			databases[4] = {MyDatabaseId, InvalidOid, MyDatabaseId, InvalidOid};
	Oid			roles[4] = {author, author, InvalidOid, InvalidOid};
	char	   *found = NULL;
	Relation	rel = table_open(DbRoleSettingRelationId, AccessShareLock);

	for (int level = 0; level < 4 && found == NULL; level++)
	{
		ScanKeyData keys[2];
		SysScanDesc scan;
		HeapTuple	tuple;

		ScanKeyInit(&keys[0], Anum_pg_db_role_setting_setdatabase, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(databases[level]));
		ScanKeyInit(&keys[1], Anum_pg_db_role_setting_setrole, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(roles[level]));
		scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true, NULL, 2, keys);
		tuple = systable_getnext(scan);
		if (HeapTupleIsValid(tuple))
		{
			bool		isnull;
			Datum		config = heap_getattr(tuple, Anum_pg_db_role_setting_setconfig,
											  RelationGetDescr(rel), &isnull);

			if (!isnull)
				found = search_path_in(config);
		}
		systable_endscan(scan);
	}
	table_close(rel, AccessShareLock);
	return found != NULL ? found : server_search_path();
}

/* -- parameters -------------------------------------------------------------------------------- */

/* Parameter types as given: a type name each, NULL or 'unknown' for "let the statement decide". */
static Oid *
given_types(ArrayType *types, int *count)
{
	Datum	   *elems;
	bool	   *nulls;
	Oid		   *oids;

	*count = 0;
	if (types == NULL)
		return NULL;
	deconstruct_array(types, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, count);
	oids = palloc0(sizeof(Oid) * Max(*count, 1));
	for (int i = 0; i < *count; i++)
	{
		int32		typmod;
		char	   *name;

		if (nulls[i])
			continue;
		name = TextDatumGetCString(elems[i]);
		if (pg_strcasecmp(name, "unknown") == 0)
			continue;
		parseTypeString(name, &oids[i], &typmod, false);
	}
	return oids;
}

/*
 * A generic plan's parameters: invisible to the planner (InvalidOid when it asks speculatively,
 * as for constant folding and estimates), NULLs of the right type for the executor's start-up.
 */
static ParamExternData *
generic_param_fetch(ParamListInfo params, int paramid, bool speculative, ParamExternData *workspace)
{
	Oid		   *types = (Oid *) params->paramFetchArg;

	workspace->value = (Datum) 0;
	workspace->isnull = true;
	workspace->pflags = 0;
	workspace->ptype = (speculative || paramid < 1 || paramid > params->numParams) ? InvalidOid : types[paramid - 1];
	return workspace;
}

static ParamListInfo
plan_params(Oid *types, int count, ArrayType *values)
{
	ParamListInfo params;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (count == 0)
		return NULL;
	params = makeParamList(count);
	if (values == NULL)
	{
		params->paramFetch = generic_param_fetch;
		params->paramFetchArg = types;
		return params;
	}
	deconstruct_array(values, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n != count)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid parameter values: the statement has %d parameters, %d values were given", count, n),
				 errhint("Give one value (text, or NULL) per $n, or no array at all for a generic plan.")));
	for (int i = 0; i < count; i++)
	{
		Oid			input;
		Oid			ioparam;

		getTypeInputInfo(types[i], &input, &ioparam);
		params->params[i].ptype = types[i];
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].isnull = nulls[i];
		params->params[i].value = OidInputFunctionCall(input, nulls[i] ? NULL : TextDatumGetCString(elems[i]),
													   ioparam, -1);
	}
	return params;
}

/* -- EXPLAIN into a string --------------------------------------------------------------------- */

typedef struct CaptureReceiver
{
	DestReceiver pub;
	StringInfo	out;
} CaptureReceiver;

static bool
capture_receive(TupleTableSlot *slot, DestReceiver *self)
{
	CaptureReceiver *capture = (CaptureReceiver *) self;
	bool		isnull;
	Datum		value = slot_getattr(slot, 1, &isnull);

	if (!isnull)
		appendStringInfoString(capture->out, TextDatumGetCString(value));
	return true;
}

static void
capture_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
capture_nothing(DestReceiver *self)
{
}

/* The role explain_planned_as() plans as, while explain_query() runs for plan_as(). */
static Oid	planning_as = InvalidOid;

/*
 * The statistics are the author's to see.  The planner uses a column's histogram and most common
 * values with an operator that is not leakproof (numeric's comparisons, jsonb's) only when
 * the role it checks may SELECT the table (examine_variable: the RTE's checkAsUser, else the
 * current user).  Planning runs as asymm_planner, which may read nothing, so every such estimate
 * was a default: a range on a numeric column was half the table whatever its bounds, and the
 * advisor priced an index for `price > $1` near the maximum as useless.  Each table the author's
 * statement reads directly (the rewriter already gave a view's tables their owner) is checked as
 * the author, who ran the statement and whom the caller may become; the code the planner folds
 * still runs as asymm_planner: only whose privileges the statistics check consults changes.
 */
static bool
statistics_as_author(Node *node, void *author)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION && !OidIsValid(rte->checkAsUser))
			rte->checkAsUser = *(Oid *) author;
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, statistics_as_author, author, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, statistics_as_author, author);
}

/*
 * ExplainOneQuery_hook while asymm explains: pg_plan_query as planning_as (the planner constant-folds
 * whatever functions the query and the views and defaults the rewriter expanded reach), then the
 * EXPLAIN output as the author, as ExplainOneQuery would do it.  On an error plan_as() restores the
 * caller's identity.
 */
static void
explain_planned_as(Query *query, int cursorOptions, IntoClause *into, ExplainState *es,
				   const char *queryString, ParamListInfo params, QueryEnvironment *queryEnv)
{
	Oid			author_id;
	int			sec_context;
	PlannedStmt *planned;

	GetUserIdAndSecContext(&author_id, &sec_context);
	statistics_as_author((Node *) query, &author_id);
	SetUserIdAndSecContext(planning_as, sec_context);
	planned = pg_plan_query(query, queryString, cursorOptions, params);
	SetUserIdAndSecContext(author_id, sec_context);
	ExplainOnePlan(planned, into, es, queryString, params, queryEnv, NULL, NULL);
}

/* EXPLAIN (FORMAT JSON) of the analysed statement, through ProcessUtility (so that HypoPG sees an EXPLAIN). */
static void
explain_query(Query *query, const char *text, ParamListInfo params, bool verbose, StringInfo out)
{
	ExplainStmt *explain = makeNode(ExplainStmt);
	PlannedStmt *wrapper = makeNode(PlannedStmt);
	CaptureReceiver capture;
	QueryCompletion qc;

	explain->query = (Node *) query;
	explain->options = list_make1(makeDefElem("format", (Node *) makeString("json"), -1));
	if (verbose)
		explain->options = lappend(explain->options, makeDefElem("verbose", NULL, -1));
	wrapper->commandType = CMD_UTILITY;
	wrapper->canSetTag = true;
	wrapper->utilityStmt = (Node *) explain;
	wrapper->stmt_location = -1;
	wrapper->stmt_len = 0;

	memset(&capture, 0, sizeof(capture));
	capture.pub.receiveSlot = capture_receive;
	capture.pub.rStartup = capture_startup;
	capture.pub.rShutdown = capture_nothing;
	capture.pub.rDestroy = capture_nothing;
	capture.pub.mydest = DestNone;
	capture.out = out;
	InitializeQueryCompletion(&qc);
	ProcessUtility(wrapper, text, false, PROCESS_UTILITY_QUERY, params, NULL, (DestReceiver *) &capture, &qc);
}

/* -- the function ------------------------------------------------------------------------------ */

/* Report a parse or planning error's position inside the statement's text, not the caller's. */
static void
statement_error_callback(void *arg)
{
	int			position = geterrposition();

	if (position > 0)
	{
		errposition(0);
		internalerrposition(position);
		internalerrquery((const char *) arg);
	}
}

/*
 * Parse, analyse and (when explain) EXPLAIN the statement; runs as the author inside the
 * restricted operation.  Returns {"param_types": [...], "plan": <EXPLAIN (FORMAT JSON)> or null}.
 */
static char *
explain_as_author(const char *text, RawStmt *raw, ArrayType *types, ArrayType *values, bool verbose, Oid planner)
{
	int			count;
	Oid		   *oids = given_types(types, &count);
	Query	   *query;
	StringInfoData plan;
	StringInfoData result;

	query = parse_analyze_varparams(raw, text, &oids, &count, NULL);
	if (query->commandType != CMD_SELECT && query->commandType != CMD_INSERT &&
		query->commandType != CMD_UPDATE && query->commandType != CMD_DELETE)
		refuse_statement("it must be one SELECT, INSERT, UPDATE, DELETE, WITH or VALUES statement");
	for (int i = 0; i < count; i++)
		if (oids[i] == InvalidOid || oids[i] == UNKNOWNOID)
			ereport(ERROR,
					(errcode(ERRCODE_INDETERMINATE_DATATYPE),
					 errmsg("could not determine data type of parameter $%d", i + 1),
					 errhint("Give the parameter's type.")));

	initStringInfo(&plan);
	if (OidIsValid(planner))
	{
		/*
		 * Names were resolved as the author (its schemas, its search_path); the planning, which
		 * folds the functions of the views and defaults the rewriter expanded, runs as the role
		 * without rights (explain_planned_as), and EXPLAIN's executor start-up, which checks the
		 * statement's privileges, as the author again.
		 */
		ExplainOneQuery_hook_type previous = ExplainOneQuery_hook;

		planning_as = planner;
		ExplainOneQuery_hook = explain_planned_as;
		PG_TRY();
		{
			explain_query(query, text, plan_params(oids, count, values), verbose, &plan);
		}
		PG_FINALLY();
		{
			ExplainOneQuery_hook = previous;
			planning_as = InvalidOid;
		}
		PG_END_TRY();
	}

	initStringInfo(&result);
	appendStringInfoString(&result, "{\"param_types\": [");
	for (int i = 0; i < count; i++)
	{
		if (i > 0)
			appendStringInfoString(&result, ", ");
		escape_json(&result, format_type_be(oids[i]));
	}
	appendStringInfo(&result, "], \"plan\": %s}", plan.len > 0 ? plan.data : "null");
	return result.data;
}

/*
 * The identity the planner runs as: asymm_planner, a role with no rights at all (the extension
 * script creates it).  Not the author: a statement's text is the author's, but the views,
 * functions, operators and defaults it reaches belong to whoever owns them, and their owners may
 * change them after the author ran it; planned as a superuser author, a role's view over an
 * IMMUTABLE function would run that role's code as the superuser.  Planning needs no privilege
 * (the executor checks them), so nothing is lost but the folding of functions PUBLIC may not
 * execute.  Refused if the role was given anything: superuser, BYPASSRLS or any membership.
 */
static Oid
planner_role(void)
{
	Oid			planner = get_role_oid("asymm_planner", true);
	HeapTuple	tuple;
	bool		privileged;
	CatCList   *memberships;

	if (!OidIsValid(planner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"asymm_planner\" does not exist"),
				 errhint("ALTER EXTENSION asymm UPDATE, or reinstall the extension: it creates the role statements are planned as.")));
	tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(planner));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for role %u", planner);
	privileged = ((Form_pg_authid) GETSTRUCT(tuple))->rolsuper || ((Form_pg_authid) GETSTRUCT(tuple))->rolbypassrls;
	ReleaseSysCache(tuple);
	memberships = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(planner));
	privileged = privileged || memberships->n_members > 0;
	ReleaseSysCacheList(memberships);
	if (privileged)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"asymm_planner\" has been given rights: asymm plans nothing as it"),
				 errhint("It must stay NOSUPERUSER NOBYPASSRLS and a member of no role.")));
	return planner;
}

/*
 * Parse, analyse and (when explain) EXPLAIN the text as the author, restoring the caller's user
 * id, security context and settings on every path.
 */
static char *
plan_as(Oid author, char *query_text, ArrayType *types, ArrayType *values, bool verbose, const char *given_path,
		bool explain)
{
	RawStmt    *raw;
	const char *path;
	ErrorContextCallback context;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	char	   *result;
	Oid			planner;

	(void) assumable_author(author);
	context.callback = statement_error_callback;
	context.arg = query_text;
	context.previous = error_context_stack;
	error_context_stack = &context;
	raw = single_statement(query_text);
	path = given_path != NULL ? given_path : author_search_path(author);

	planner = planner_role();
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	SetUserIdAndSecContext(author, save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		result = explain_as_author(query_text, raw, types, values, verbose, explain ? planner : InvalidOid);
	}
	PG_CATCH();
	{
		/* the (sub)transaction abort would restore both; restore now so nothing after us runs as the author */
		SetUserIdAndSecContext(save_userid, save_sec_context);
		AtEOXact_GUC(false, save_nestlevel);
		PG_RE_THROW();
	}
	PG_END_TRY();
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	error_context_stack = context.previous;
	return result;
}

static Oid
author_argument(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("invalid author: NULL"),
				 errhint("Give the OID of the role that ran the statement (pg_stat_statements.userid).")));
	if (PG_ARGISNULL(1))
		refuse_statement("it is NULL");
	return PG_GETARG_OID(0);
}

/*
 * asymm._explain_as(author oid, query text, param_types text[], param_values text[], verbose bool,
 * search_path text) RETURNS json: {"param_types": [...], "plan": <EXPLAIN (FORMAT JSON)>}.  Not
 * STRICT: NULL param_types lets the statement decide every type, NULL param_values asks for the
 * generic plan, NULL search_path means the author's own.
 */
Datum
asymm_explain_as(PG_FUNCTION_ARGS)
{
	Oid			author = author_argument(fcinfo);
	char	   *query_text = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ArrayType  *types = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	ArrayType  *values = PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3);
	bool		verbose = !PG_ARGISNULL(4) && PG_GETARG_BOOL(4);
	char	   *path = PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5));

	PG_RETURN_TEXT_P(cstring_to_text(plan_as(author, query_text, types, values, verbose, path, true)));
}

/*
 * asymm._param_types_as(author oid, query text, param_types text[], search_path text) RETURNS
 * json: {"param_types": [...], "plan": null}, the types the statement gives its $n when analysed
 * as the author (what PREPARE would infer), without planning it.
 */
Datum
asymm_param_types_as(PG_FUNCTION_ARGS)
{
	Oid			author = author_argument(fcinfo);
	char	   *query_text = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ArrayType  *types = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	char	   *path = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));

	PG_RETURN_TEXT_P(cstring_to_text(plan_as(author, query_text, types, NULL, false, path, false)));
}

/*
 * asymm._plan_as_refusal(author oid) RETURNS text: why the caller may not plan the author's
 * statements (the same checks as asymm._explain_as), or NULL when it may.  Lets callers list a
 * statement as skipped with the reason, without telling a refusal from a planning error by its
 * SQLSTATE.
 */
Datum
asymm_plan_as_refusal(PG_FUNCTION_ARGS)
{
	Oid			author;
	char	   *name;

	if (PG_ARGISNULL(0))
		PG_RETURN_TEXT_P(cstring_to_text("no role to plan it as"));
	author = PG_GETARG_OID(0);
	name = GetUserNameFromId(author, true);
	if (name == NULL)
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("role with OID %u no longer exists", author)));
	if (!may_assume(author))
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("cannot assume role %s", quote_identifier(name))));
	PG_RETURN_NULL();
}
