//! `core.sql` and `core.mysql` against real servers: PostgreSQL and MariaDB started by this
//! test binary (one of each, shared; each test has its own databases) and `SQLite` files.
//! Every function on every kind, injection attempts, caps, and statements cancelled on the
//! server when the run times out or is aborted. A missing server is a skip with a note (a
//! failure under `JOBTOP_REQUIRE_SERVERS`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::databases::{
    PRELUDE, assert_ok, capped, job_request, mariadb, postgres, run_job, sqlite,
};
use common::runner::runner;
use common::servers::mariadb::MariaDb;
use common::servers::postgres::Postgres;
use common::servers::wait_until;
use jobtop::config::{Database, DatabaseKind};
use jobtop::job::RunResult;

const LONG: Duration = Duration::from_secs(20);

/// The same job on every kind: `p(n)` writes the n-th placeholder, `ddl` the table.
fn core_sql_suite(db: &Arc<Database>, dir: &std::path::Path) {
    let p = |n: usize| match db.kind() {
        DatabaseKind::Postgres => format!("${n}"),
        _ => "?".to_string(),
    };
    let (id, price, seen) = match db.kind() {
        DatabaseKind::Postgres => ("id SERIAL PRIMARY KEY", "NUMERIC(10,2)", "TIMESTAMP"),
        DatabaseKind::MySql => (
            "id INT AUTO_INCREMENT PRIMARY KEY",
            "DECIMAL(10,2)",
            "DATETIME",
        ),
        DatabaseKind::Sqlite => ("id INTEGER PRIMARY KEY", "TEXT", "TEXT"),
    };
    let has_last_id = db.kind() != DatabaseKind::Postgres;
    let body = format!(
        r#"
  local db = "{name}"
  ok(core.sql.exec(db, "CREATE TABLE items ({id}, name VARCHAR(200), qty INTEGER, price {price}, seen {seen}, note TEXT)"))
  local r = ok(core.sql.exec(db, "INSERT INTO items (name, qty, price, seen, note) VALUES ({p1}, {p2}, {p3}, {p4}, {p5})",
    "bolt", 3, "1.50", "2024-05-01 12:30:00", core.NULL), nil, "insert")
  eq(r.affected, 1, "affected by insert")
  if {has_last_id} then eq(r.last_id, 1, "last_id") else eq(r.last_id, nil, "last_id") end
  local rows = ok(core.sql.query(db, "SELECT id, name, qty, price, seen, note FROM items WHERE name = {p1}", "bolt"))
  eq(#rows, 1, "rows")
  eq(rows[1].id, 1, "id")
  eq(rows[1].name, "bolt", "name")
  eq(rows[1].qty, 3, "qty")
  eq(rows[1].price, "1.50", "price")
  eq(rows[1].seen, "2024-05-01 12:30:00", "seen")
  eq(rows[1].note, core.NULL, "note")
  eq(type(rows[1].qty), "number", "type of qty")

  -- A value is bound, never spliced into the SQL.
  local evil = "x'); DROP TABLE items; --"
  ok(core.sql.exec(db, "INSERT INTO items (name, qty) VALUES ({p1}, {p2})", evil, 1))
  local back = ok(core.sql.query(db, "SELECT name FROM items WHERE name = {p1}", evil))
  eq(back[1].name, evil, "the injection attempt, stored as text")
  local none = ok(core.sql.query(db, "SELECT name FROM items WHERE name = {p1}", "bolt' OR '1'='1"))
  eq(#none, 0, "rows matching an injection attempt")

  -- Transactions: committed when the function returns, rolled back on error or nil, err.
  local committed = core.sql.transaction(db, function(tx)
    ok(tx:exec("INSERT INTO items (name, qty) VALUES ({p1}, {p2})", "nut", 10))
    local inside = ok(tx.query("SELECT COUNT(*) AS n FROM items WHERE name = {p1}", "nut"))
    eq(inside[1].n, 1, "the insert, seen inside the transaction")
  end)
  eq(committed, true, "transaction result")
  local v, err = core.sql.transaction(db, function(tx)
    ok(tx:exec("INSERT INTO items (name, qty) VALUES ({p1}, {p2})", "ghost", 1))
    error("changed my mind")
  end)
  eq(v, nil, "failed transaction")
  assert(string.find(err, "rolled back: .*changed my mind"), err)
  local v2, err2 = core.sql.transaction(db, function(tx)
    ok(tx:exec("INSERT INTO items (name, qty) VALUES ({p1}, {p2})", "ghost", 2))
    return nil, "nope"
  end)
  eq(v2, nil, "refused transaction")
  assert(string.find(err2, "rolled back: nope"), err2)
  local kept = ok(core.sql.transaction(db, function(tx) return "answer", 42 end))
  eq(kept, "answer", "a transaction's own result")
  local counts = ok(core.sql.query(db, "SELECT name, COUNT(*) AS n FROM items GROUP BY name ORDER BY name"))
  eq(#counts, 3, "names after the transactions (bolt, nut, the injection)")
  eq(counts[2].name, "nut", "the committed row")

  -- exec counts what it changed; a bad statement is nil, err, code.
  local u = ok(core.sql.exec(db, "UPDATE items SET qty = qty + 1 WHERE qty >= {p1}", 1))
  eq(u.affected, 3, "rows updated")
  local bad, e, code = core.sql.query(db, "SELECT * FROM nowhere")
  eq(bad, nil, "query of a missing table")
  assert(string.find(e, "core.sql.query(" .. db .. "): ", 1, true), e)
  assert(code ~= nil, "an error code: " .. e)
  local wrong, e2 = core.sql.query(db, "SELECT {p1} AS a", {{}})
  eq(wrong, nil, "a table as a parameter")
  assert(string.find(e2, "parameter 1 is a table: expected a string, a number, a boolean, nil or core.NULL", 1, true), e2)
  local gone = ok(core.sql.exec(db, "DELETE FROM items WHERE name = {p1}", "nut"))
  eq(gone.affected, 1, "rows deleted")
  local big = ok(core.sql.query(db, "SELECT 9007199254740993 AS n"))
  -- beyond 2^53 a whole number comes back as text, exactly
  eq(big[1].n, "9007199254740993", "a whole number past 2^53")
"#,
        name = db.name,
        p1 = p(1),
        p2 = p(2),
        p3 = p(3),
        p4 = p(4),
        p5 = p(5),
    );
    let outcome = run_job(dir, &body, std::slice::from_ref(db), LONG);
    assert_ok(&outcome);
}

#[test]
fn core_sql_on_postgres() {
    let Some(pg) = Postgres::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    core_sql_suite(&postgres(pg, "main", "suite_pg"), dir.path());
    // A PostgreSQL-only look at types: booleans are booleans, dates text.
    let db = postgres(pg, "typed", "types_pg");
    let outcome = run_job(
        dir.path(),
        r#"
  local r = ok(core.sql.query("typed", "SELECT true AS t, DATE '2024-02-29' AS d, 2.5::float8 AS f, 'a'::varchar AS v, NULL::int AS n, '550e8400-e29b-41d4-a716-446655440000'::uuid AS u"))[1]
  eq(r.t, true, "bool")
  eq(r.d, "2024-02-29", "date")
  eq(r.f, 2.5, "float")
  eq(r.v, "a", "varchar")
  eq(r.n, core.NULL, "null")
  eq(r.u, "550e8400-e29b-41d4-a716-446655440000", "uuid")
  local x, e = core.sql.query("typed", "SELECT ARRAY[1,2] AS a")
  eq(x, nil, "an array")
  assert(string.find(e, "cast it", 1, true), e)
"#,
        &[db],
        LONG,
    );
    assert_ok(&outcome);
}

#[test]
fn core_sql_on_mariadb() {
    let Some(my) = MariaDb::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    core_sql_suite(&mariadb(my, "main", "suite_my"), dir.path());
}

#[test]
fn core_sql_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    core_sql_suite(&sqlite(dir.path(), "main"), dir.path());
}

#[test]
fn undeclared_databases_and_capabilities_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path(), "local");
    let outcome = run_job(
        dir.path(),
        r#"
  local r, e = core.sql.query("other", "SELECT 1")
  eq(r, nil, "an undeclared database")
  assert(string.find(e, 'database "other" is not one of job dbtest', 1, true), e)
  local r2, e2 = core.mysql.select("local", {tbl = "x"})
  eq(r2, nil, "core.mysql on SQLite")
  assert(string.find(e2, "expected a MySQL or MariaDB database", 1, true), e2)
"#,
        std::slice::from_ref(&db),
        LONG,
    );
    assert_ok(&outcome);
    let mut req = job_request(
        dir.path(),
        "no_grant.lua",
        "  local r, e = core.sql.query('local', 'SELECT 1')\n  eq(r, nil)\n  core.log(e)",
        &[db],
    );
    req.grants = Arc::new(jobtop::runtime::JobGrants {
        allow: vec![],
        ..(*req.grants).clone()
    });
    let outcome = runner().run(&req);
    assert_ok(&outcome);
    assert!(
        outcome.logs[0].contains("add `allow: [db]`"),
        "{:?}",
        outcome.logs
    );
}

#[test]
fn results_over_the_caps_are_nil_err_and_the_next_query_works() {
    let dir = tempfile::tempdir().unwrap();
    let body = |series: &str, big: &str| {
        format!(
            r#"
  local r, e = core.sql.query("db", "{series}")
  eq(r, nil, "rows over max_rows")
  assert(string.find(e, "more than 10 rows", 1, true), e)
  local r2, e2 = core.sql.query("db", "{big}")
  eq(r2, nil, "bytes over max_result")
  assert(string.find(e2, "larger than 1 KiB", 1, true), e2)
  eq(#ok(core.sql.query("db", "SELECT 1 AS one")), 1, "a query after the caps")
"#
        )
    };
    let lite = capped(&sqlite(dir.path(), "db"), 10, 1024);
    let outcome = run_job(
        dir.path(),
        &body(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000) SELECT n FROM s",
            "SELECT printf('%.2000c', 'x') AS big",
        ),
        &[lite],
        LONG,
    );
    assert_ok(&outcome);
    if let Some(pg) = Postgres::shared() {
        let db = capped(&postgres(pg, "db", "caps_pg"), 10, 1024);
        let outcome = run_job(
            dir.path(),
            &body(
                "SELECT n FROM generate_series(1, 1000000) AS n",
                "SELECT repeat('x', 2000) AS big",
            ),
            &[db],
            LONG,
        );
        assert_ok(&outcome);
    }
    if let Some(my) = MariaDb::shared() {
        let db = capped(&mariadb(my, "db", "caps_my"), 10, 1024);
        let outcome = run_job(
            dir.path(),
            &body(
                "SELECT seq FROM seq_1_to_1000000",
                "SELECT REPEAT('x', 2000) AS big",
            ),
            &[db],
            LONG,
        );
        assert_ok(&outcome);
    }
}

/// Runs `sql` (a statement that sleeps 60 s) in a job with a 1 s timeout, or aborted once the
/// server shows it when `abort`; checks the run's result and that the server no longer runs
/// it. `running` counts the server's sessions running the statement.
fn cancelled_on_the_server(
    db: &Arc<Database>,
    sql: &str,
    abort: bool,
    running: &(dyn Fn() -> usize + Sync),
) {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "  local r, e = core.sql.query('{}', \"{sql}\")\n  core.log(e)\n  while true do end",
        db.name
    );
    let mut req = job_request(dir.path(), "sleepy.lua", &body, std::slice::from_ref(db));
    req.timeout = Duration::from_secs(if abort { 30 } else { 1 });
    let control = req.control.clone();
    let started = Instant::now();
    let outcome = thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            wait_until("the statement to run on the server", LONG, || {
                Ok((running() > 0).then_some(()))
            });
            if abort {
                control.abort();
            }
        });
        let outcome = runner().run(&req);
        watcher.join().unwrap();
        outcome
    });
    let took = started.elapsed();
    let (want, overshoot) = if abort {
        (RunResult::Aborted, Duration::ZERO)
    } else {
        (RunResult::Timeout, took.saturating_sub(req.timeout))
    };
    assert_eq!(outcome.result, want, "{outcome:?}");
    eprintln!(
        "note: {:?} of {sql} ended {took:?} after it started ({overshoot:?} past its deadline)",
        db.kind()
    );
    // A bound on a hang (the statement sleeps 60 s), not a measurement: that is the note.
    assert!(
        overshoot < Duration::from_secs(10),
        "the run outlived its deadline by {overshoot:?}"
    );
    wait_until(
        "the statement to be gone from the server",
        Duration::from_secs(5),
        || Ok((running() == 0).then_some(())),
    );
}

#[test]
fn postgres_statements_past_the_timeout_or_aborted_are_cancelled_on_the_server() {
    let Some(pg) = Postgres::shared() else { return };
    let db = postgres(pg, "slow", "cancel_pg");
    let running = || {
        pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'",
        )
        .parse::<usize>()
        .unwrap()
    };
    cancelled_on_the_server(&db, "SELECT pg_sleep(60)", false, &running);
    cancelled_on_the_server(&db, "SELECT pg_sleep(60)", true, &running);
}

#[test]
fn mariadb_statements_past_the_timeout_or_aborted_are_killed_on_the_server() {
    let Some(my) = MariaDb::shared() else { return };
    let db = mariadb(my, "slow", "cancel_my");
    let running = || {
        my.sql("mysql", "SHOW PROCESSLIST")
            .lines()
            .filter(|line| line.contains("SELECT SLEEP(60)"))
            .count()
    };
    cancelled_on_the_server(&db, "SELECT SLEEP(60)", false, &running);
    cancelled_on_the_server(&db, "SELECT SLEEP(60)", true, &running);
}

#[test]
fn sqlite_statements_past_the_timeout_are_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path(), "spin");
    let mut req = job_request(
        dir.path(),
        "spin.lua",
        "  local r, e = core.sql.query('spin', 'WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s) SELECT count(*) FROM s')\n  core.log(e)",
        &[db],
    );
    req.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let outcome = runner().run(&req);
    assert_eq!(outcome.result, RunResult::Timeout, "{outcome:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn prelude_is_valid_lua() {
    // The checks themselves fail when they should.
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_job(dir.path(), "  eq(1, 2, 'one')", &[], LONG);
    assert_eq!(outcome.result, RunResult::Error);
    assert!(outcome.error.unwrap().contains("one: got 1, expected 2"));
    let _ = PRELUDE;
}

/// Runs the job file `tests/fixtures/coronium/<file>` scheduled at `at`, with the databases.
fn coronium(file: &str, at: &str, databases: &[Arc<Database>]) -> jobtop::runtime::RunOutcome {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/coronium")
        .join(file);
    let mut req =
        common::runner::request(path, file, common::databases::grants("coronium", databases));
    req.scheduled = common::runner::at(at);
    runner().run(&req)
}

#[test]
fn coronium_examples_run_unchanged_against_mariadb() {
    let Some(my) = MariaDb::shared() else { return };
    let products = mariadb(my, "products", "products");
    let shop = mariadb(my, "shop", "shop");
    let clients = mariadb(my, "clients", "clients");
    let leaderboard = mariadb(my, "leaderboard", "leaderboard");
    my.sql(
        "products",
        "CREATE TABLE toys (id INT AUTO_INCREMENT PRIMARY KEY, type VARCHAR(50), stock INT, \
           out_of_stock BOOLEAN NOT NULL DEFAULT FALSE, color VARCHAR(20) NULL, name VARCHAR(50));\n\
         INSERT INTO toys (type, stock, color, name) VALUES ('Red Bikes', 5, 'red', 'bike'), ('Cars', 0, 'blue', 'car');",
    );
    my.sql(
        "shop",
        "CREATE TABLE status (id INT PRIMARY KEY, no_specials BOOLEAN, month VARCHAR(3), sales_total DECIMAL(10,2));\n\
         INSERT INTO status VALUES (1, FALSE, 'Jan', 1234.50), (2, TRUE, 'Feb', 10.00);",
    );
    my.sql(
        "clients",
        "CREATE TABLE orders (id INT PRIMARY KEY, item VARCHAR(20));\n\
         INSERT INTO orders VALUES (7, 'lamp'), (8, 'desk');\n\
         CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20), age INT, email VARCHAR(50));",
    );
    my.sql(
        "leaderboard",
        "CREATE TABLE scores (id INT AUTO_INCREMENT PRIMARY KEY, player VARCHAR(20), score INT);\n\
         INSERT INTO scores VALUES (20, 'Ann', 5), (2, 'Bob', 8);",
    );
    let all = [
        products.clone(),
        shop.clone(),
        clients.clone(),
        leaderboard.clone(),
    ];
    let thursday = "2023-10-12T12:00:00Z";

    // Recurring: stock left, nothing to do; out of stock, `where = { id = bikes.id }` is
    // `{}` (only `stock` was selected), which jobtop refuses rather than update every row.
    let outcome = coronium("recurring.lua", thursday, &all);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    my.sql(
        "products",
        "UPDATE toys SET stock = 0 WHERE type = 'Red Bikes'",
    );
    let outcome = coronium("recurring.lua", thursday, &all);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    assert_eq!(
        my.sql("products", "SELECT SUM(out_of_stock) FROM toys"),
        "0"
    );

    // Sleep: nothing on a Thursday, the update on a Sunday.
    let outcome = coronium("sleep.lua", thursday, &all);
    assert_eq!(outcome.result, RunResult::Sleep, "{outcome:?}");
    assert_eq!(my.sql("shop", "SELECT SUM(no_specials) FROM status"), "1");
    let outcome = coronium("sleep.lua", "2023-10-15T12:00:00Z", &all);
    assert_eq!(outcome.result, RunResult::Sleep, "{outcome:?}");
    assert_eq!(my.sql("shop", "SELECT SUM(no_specials) FROM status"), "2");

    // Exit: no blender, so the error is logged and the job exits; with one it is OK.
    let outcome = coronium("exit.lua", thursday, &all);
    assert_eq!(outcome.result, RunResult::Exit, "{outcome:?}");
    assert_eq!(
        outcome.logs,
        ["core.mysql.selectOne(products): no record matches"]
    );
    my.sql(
        "products",
        "INSERT INTO toys (type, stock) VALUES ('blender', 1)",
    );
    let outcome = coronium("exit.lua", thursday, &all);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");

    // The module page's examples, one after another.
    let outcome = coronium("module_examples.lua", thursday, &all);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    let logs = outcome.logs.join("\n");
    for line in [
        "7\n8\n",
        "inserted id is: \t1\n",
        "'Eat at Joe''s'\n",
        "'A special \"thing\" here.'\t24\t'Joe''s Place'",
        "Bob scored 8\nAnn scored 5\n",
        // insert's id (Sandy), update's and delete's counts
        "\n21\n1\n1\n",
        "1\tnil\tnil\n",
        "\n2",
    ] {
        assert!(logs.contains(line), "{line:?} not in the log:\n{logs}");
    }
    assert_eq!(
        my.sql("clients", "SELECT name, age, email FROM users"),
        "Jimmy\t22\tme@somemail.com"
    );
    assert_eq!(
        my.sql(
            "products",
            "SELECT COUNT(*) FROM toys WHERE color IS NULL AND name = 'bike'"
        ),
        "1"
    );
    assert_eq!(my.sql("leaderboard", "SELECT COUNT(*) FROM scores"), "0");
}

#[test]
fn injection_through_where_keys_and_identifiers_is_refused() {
    let Some(my) = MariaDb::shared() else { return };
    let db = mariadb(my, "app", "injection");
    my.sql(
        "injection",
        "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(50));\nINSERT INTO users VALUES (1, 'ann'), (2, 'bob');",
    );
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_job(
        dir.path(),
        r#"
  -- a key that tries to end the identifier and add a condition
  local r, e = core.mysql.select("app", {tbl = "users", where = {["id` = 1 OR 1=1 -- "] = 1}})
  eq(r, nil, "an injected where key")
  assert(string.find(e, "is not a plain name", 1, true), e)
  local r2, e2 = core.mysql.select("app", {tbl = "users; DROP TABLE users", where = {id = 1}})
  eq(r2, nil, "an injected table name")
  assert(string.find(e2, "tbl", 1, true), e2)
  local r3, e3 = core.mysql.update("app", {tbl = "users", values = {["name`='x', `id"] = "y"}, where = {id = 1}})
  eq(r3, nil, "an injected column in values")
  local r4, e4 = core.mysql.select("app", {tbl = "users", orderby = {["id; DROP TABLE users"] = "ASC"}})
  eq(r4, nil, "an injected orderby column")
  local r5, e5 = core.mysql.select("app", {tbl = "users", orderby = {id = "ASC; DROP TABLE users"}})
  eq(r5, nil, "an injected direction")
  -- values are bound: they match nothing and change nothing
  eq(#ok(core.mysql.select("app", {tbl = "users", where = {name = "ann' OR '1'='1"}})), 0, "an injected value")
  eq(ok(core.mysql.update("app", {tbl = "users", values = {name = "x'; DROP TABLE users; --"}, where = {id = 2}})), 1, "update")
  eq(ok(core.mysql.selectOne("app", {tbl = "users", where = {id = 2}})).name, "x'; DROP TABLE users; --", "stored as text")
  eq(#ok(core.mysql.select("app", {tbl = "users", where = {id = {1, 2}}, orderby = {id = core.DESC}})), 2, "both users")
  local r6, e6 = core.mysql.delete("app", {tbl = "users"})
  eq(r6, nil, "a delete without where")
  assert(string.find(e6, "force = true", 1, true), e6)
  local r7, e7 = core.mysql.update("app", {tbl = "users", values = {name = "z"}, where = {}})
  eq(r7, nil, "an update with an empty where")
  local r8, e8 = core.mysql.select("app", {tbl = "users", wher = {id = 1}})
  eq(r8, nil, "a misspelt key")
  assert(string.find(e8, 'unknown option "wher"', 1, true), e8)
  local r9, e9 = core.mysql.select({database = "app", password = "x"}, {tbl = "users"})
  eq(r9, nil, "a connection table")
  eq(ok(core.mysql.selectCount("app", {tbl = "users"})), 2, "count")
"#,
        &[db],
        LONG,
    );
    assert_ok(&outcome);
    assert_eq!(my.sql("injection", "SELECT COUNT(*) FROM users"), "2");
}

const SECRET_GOOD: &str = r#"local job = core.job()
function job.run()
  for _, db in ipairs({"my", "pg", "viaurl"}) do
    local rows, err = core.sql.query(db, "SELECT 41 + 1 AS answer")
    if not rows then error(err) end
    core.log(db, rows[1].answer)
  end
  return job.OK
end
return job
"#;

const SECRET_FAILING: &str = r#"local job = core.job()
function job.run()
  local _, e1 = core.sql.query("my", "SELECT * FROM nowhere")
  core.log(e1)
  local _, e2 = core.sql.query("wrongpw", "SELECT 1")
  core.log(e2)
  local _, e3 = core.mysql.query("my", "SELEKT 1")
  core.log(e3)
  local _, e4 = core.sql.query("pg", "SELECT * FROM nowhere")
  error(e4 .. " / " .. e2)
end
return job
"#;

#[test]
fn a_password_from_the_environment_is_never_in_the_log_the_state_or_an_error() {
    use common::process::{Cli, Sandbox, Serve, runs, text};
    let (Some(my), Some(pg)) = (MariaDb::shared(), Postgres::shared()) else {
        return;
    };
    let secret = common::servers::secret("dbpw");
    let wrong = common::servers::secret("wrongpw");
    my.create_database("secrets_my");
    my.create_user("jobs_user", &secret, "secrets_my");
    pg.create_database("secrets_pg");
    let with_password = pg.create_user("jobs_pg", &secret, "secrets_pg");
    let yaml = secrets_yaml(my.port(), pg.port());
    let sandbox = Sandbox::with_cli(
        Cli::new(Duration::from_secs(20)),
        &yaml,
        &[("good.lua", SECRET_GOOD), ("failing.lua", SECRET_FAILING)],
    );
    // Without the variables, check names them (and only them).
    let out = sandbox.jobtop(&["check"]);
    assert_ne!(out.status.code(), Some(0));
    let said = text(&out.stdout) + &text(&out.stderr);
    for var in [
        "JOBTOP_TEST_DB_PW",
        "JOBTOP_TEST_WRONG_PW",
        "JOBTOP_TEST_DB_URL",
    ] {
        assert!(
            said.contains(&format!("names {var}, which is not set")),
            "{said}"
        );
    }
    let serve = Serve::spawn_with_env(
        &sandbox,
        &[
            ("JOBTOP_TEST_DB_PW", secret.as_str()),
            ("JOBTOP_TEST_WRONG_PW", wrong.as_str()),
            ("JOBTOP_TEST_DB_URL", with_password.as_str()),
        ],
    );
    // `list` and `history` need no database variables.
    sandbox.wait_job("good", LONG, |j| runs(j) >= 1);
    let failing = sandbox.wait_job("failing", LONG, |j| {
        runs(j) >= 1 && j["status"] != "running"
    });
    // Runs that overlap a slow one are skipped: look at the runs that ran.
    let ran = |history: &[serde_json::Value]| {
        history
            .iter()
            .find(|run| run["result"] != "skipped")
            .cloned()
            .unwrap_or_else(|| panic!("no run that ran: {history:#?}"))
    };
    let good = sandbox.history("good");
    let first = ran(&good);
    assert_eq!(first["result"], "ok", "{good:#?}");
    let logs = first["logs"].to_string();
    for line in ["my\\t42", "pg\\t42", "viaurl\\t42"] {
        assert!(logs.contains(line), "{line} not in {logs}");
    }
    let history = sandbox.history("failing");
    let failed = ran(&history);
    let error = failed["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("core.sql.query(pg): relation \"nowhere\" does not exist"),
        "{error}"
    );
    assert!(
        error.contains("core.sql.query(wrongpw): cannot connect to mysql://jobs_user@127.0.0.1:"),
        "{error}"
    );
    assert!(error.contains("Access denied"), "{error}");
    let logs = failed["logs"].to_string();
    assert!(
        logs.contains("core.mysql.query(my): You have an error in your SQL syntax"),
        "{logs}"
    );
    drop(serve);
    // Nowhere: not in what the CLI shows, the service's log and stderr, or the state files.
    let mut places = vec![
        (
            "list".to_string(),
            serde_json::to_string(&sandbox.list()).unwrap(),
        ),
        (
            "history good".to_string(),
            serde_json::to_string(&good).unwrap(),
        ),
        (
            "history failing".to_string(),
            serde_json::to_string(&history).unwrap(),
        ),
        ("failing".to_string(), failing.to_string()),
        ("service log".to_string(), sandbox.service_log()),
    ];
    places.extend(files_in(&[sandbox.path(), &sandbox.state_dir()]));
    assert!(
        places.iter().any(|(what, _)| what.ends_with("state.db")),
        "no state.db"
    );
    for (what, content) in &places {
        for s in [&secret, &wrong] {
            assert!(!content.contains(s.as_str()), "the password is in {what}");
        }
    }
}

#[test]
fn the_shipped_purge_job_purges_old_rows() {
    let dir = tempfile::tempdir().unwrap();
    let app = sqlite(dir.path(), "app");
    let outcome = run_job(
        dir.path(),
        r#"
  ok(core.sql.exec("app", "CREATE TABLE events (id INTEGER PRIMARY KEY, created_at TEXT)"))
  for _, days in ipairs({1, 40, 400}) do
    ok(core.sql.exec("app", "INSERT INTO events (created_at) VALUES (?)", core.mysql.timestamp(os.time() - days * 86400)))
  end
"#,
        std::slice::from_ref(&app),
        LONG,
    );
    assert_ok(&outcome);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/db_purge.lua");
    let req = common::runner::request(
        path,
        "jobs/db_purge.lua",
        common::databases::grants("db-purge", &[app]),
    );
    let outcome = runner().run(&req);
    assert_ok(&outcome);
    assert!(
        outcome.logs[0].starts_with("purged 2 rows of events older than "),
        "{:?}",
        outcome.logs
    );
    // Without its table: logged, and the job goes on.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let req = common::runner::request(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/db_purge.lua"),
        "jobs/db_purge.lua",
        common::databases::grants("db-purge", &[sqlite(&sub, "app")]),
    );
    let outcome = runner().run(&req);
    assert_ok(&outcome);
    assert!(
        outcome.logs[0].starts_with("purge failed: core.sql.transaction(app): rolled back: ")
            && outcome.logs[0].ends_with("no such table: events"),
        "{:?}",
        outcome.logs
    );
}

/// `db` with TLS asked for.
fn with_tls(db: &Arc<Database>) -> Arc<Database> {
    let mut db = (**db).clone();
    if let jobtop::config::DatabaseTarget::Postgres(server)
    | jobtop::config::DatabaseTarget::MySql(server) = &mut db.target
    {
        server.tls = true;
    }
    Arc::new(db)
}

#[test]
fn tls_asked_for_is_never_given_up_for_plain_text() {
    // The test servers speak no TLS: a database whose URL asks for it fails to connect, saying
    // why, rather than going on unencrypted.
    let dir = tempfile::tempdir().unwrap();
    let mut databases = Vec::new();
    if let Some(pg) = Postgres::shared() {
        databases.push(with_tls(&postgres(pg, "pg", "tls_pg")));
    }
    if let Some(my) = MariaDb::shared() {
        databases.push(with_tls(&mariadb(my, "my", "tls_my")));
    }
    for db in databases {
        let body = format!(
            "  local r, e = core.sql.query('{}', 'SELECT 1')\n  eq(r, nil, 'a query without TLS')\n  core.log(e)",
            db.name
        );
        let outcome = run_job(dir.path(), &body, std::slice::from_ref(&db), LONG);
        assert_ok(&outcome);
        let error = &outcome.logs[0];
        assert!(error.contains("cannot connect to"), "{error}");
        let lower = error.to_lowercase();
        assert!(
            lower.contains("tls") || lower.contains("ssl") || lower.contains("secure"),
            "{error}"
        );
        eprintln!("note: {error}");
    }
}

/// Every file directly in `dirs`, by path, with its bytes as text.
fn files_in(dirs: &[&std::path::Path]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                files.push((
                    path.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    files
}

/// The `jobs.yaml` of the secrets test: databases on the two servers, passwords from the
/// environment, a job that succeeds and one that fails in every way it can.
fn secrets_yaml(mp: u16, pp: u16) -> String {
    format!(
        "service:\n  databases:\n    my: {{url: \"mysql://jobs_user@127.0.0.1:{mp}/secrets_my\", password_env: JOBTOP_TEST_DB_PW}}\n    pg: {{url: \"postgres://jobs_pg@127.0.0.1:{pp}/secrets_pg\", password_env: JOBTOP_TEST_DB_PW}}\n    wrongpw: {{url: \"mysql://jobs_user@127.0.0.1:{mp}/secrets_my\", password_env: JOBTOP_TEST_WRONG_PW}}\n    viaurl: {{url_env: JOBTOP_TEST_DB_URL}}\njobs:\n  - name: good\n    path: good.lua\n    interval: 1s\n    allow: [db]\n    databases: [my, pg, viaurl]\n  - name: failing\n    path: failing.lua\n    interval: 1s\n    allow: [db]\n    databases: [my, wrongpw, pg]\n"
    )
}
