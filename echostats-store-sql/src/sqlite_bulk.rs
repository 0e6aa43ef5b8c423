//! Inserting plays and items into SQLite through its C API, one SQL call per chunk of
//! rows, and reading plays back the same way, a page per call ([`PlayPages`]: the
//! duplicate window of a chunk, and whole histories for exports and Python).
//!
//! Through sqlx, every value of a multi-row INSERT is bound one by one into an `Any`
//! argument list, turned into SQLite's, copied again for sqlx's SQLite thread, and once
//! more by SQLite when bound: a dozen allocations and copies per play.
//!
//! Here the rows of a chunk travel packed in one BLOB ([`PackedRows`]), and
//! `echostats_insert_rows(rows)`, a SQL function this module gives every SQLite
//! connection of the process, unpacks them on SQLite's side and steps prepared INSERTs
//! of [`STEP_ROWS`] rows, the values bound in place. It runs on the connection that
//! calls it, in that connection's transaction, like any statement sqlx sends; sqlx never
//! lends out the connection's handle, which is why the work is done in a function. The
//! 1M-entry import took 5.88 s against 6.67 s through sqlx (medians of 4 alternating
//! rounds, CPU 8.88 s against 9.89 s; the README's Speed section); what the INSERT costs
//! now is mostly SQLite's own b-tree work. New items (`play_items`) took the same road
//! later: 3.70 s against 3.85 s (medians of 6 alternating rounds, CPU −4%).
//!
//! Both functions are registered with `sqlite3_auto_extension` ([`register`]), SQLite's
//! hook for every connection opened afterwards, before the first SQLite pool is opened.

use crate::codec::{
    entry_from_row, ColumnValue, Query, RowValues, ITEM_WRITE_COLS, PLAY_READ_COLS, PLAY_READ_COL_COUNT,
    PLAY_WRITE_COLS,
};
use crate::error::{SqlError, SqlResult};
use echostats_core::model::HistoryEntry;
use libsqlite3_sys as ffi;
use sqlx::{AnyConnection, Executor, Row};
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::OnceLock;

/// The SQL function's name, for the constants below.
macro_rules! insert_rows_fn {
    () => {
        "echostats_insert_rows"
    };
}

/// Name of the SQL function.
pub(crate) const INSERT_ROWS_FN: &str = insert_rows_fn!();
/// The statement that calls it on a pack ([`PackedRows::into_call`]); it returns the
/// last id.
const INSERT_ROWS_CALL: &str = concat!("SELECT ", insert_rows_fn!(), "($1)");

/// Name of the SQL function reading a duplicate window ([`window_call`]).
macro_rules! read_window_fn {
    () => {
        "echostats_read_window"
    };
}

/// Name of the read function.
const READ_WINDOW_FN: &str = read_window_fn!();
/// The statement that calls it: user, first and last end time (ms), the kinds as a bit
/// mask, the end time and id of the last row of the page before, and the most rows to
/// return.
const READ_WINDOW_CALL: &str = concat!("SELECT ", read_window_fn!(), "($1, $2, $3, $4, $5, $6, $7)");
/// What the read function runs, its parameters those of the call in order. Pages follow
/// the index (user, end time, ..., id), so that each starts where the last ended: paged
/// by id, every page sorted the rest of the window again.
fn read_window_sql() -> &'static CStr {
    static SQL: OnceLock<CString> = OnceLock::new();
    SQL.get_or_init(|| {
        let sql = format!(
            "SELECT {PLAY_READ_COLS} FROM play_rows WHERE user_id = ?1 AND played_at >= ?2 AND played_at <= ?3 \
             AND ((1 << kind) & ?4) != 0 AND (played_at, id) > (?5, ?6) ORDER BY played_at, id LIMIT ?7"
        );
        CString::new(sql).expect("no NUL in the SQL")
    })
}

const TAG_NULL: u8 = 0;
const TAG_INT: u8 = 1;
const TAG_TEXT: u8 = 2;

/// The tables the function writes, and the byte that opens a pack of their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BulkTable {
    /// `plays`: [`PLAY_WRITE_COLS`].
    Plays = 0,
    /// `play_items`: [`ITEM_WRITE_COLS`].
    Items = 1,
}

impl BulkTable {
    const ALL: [BulkTable; 2] = [BulkTable::Plays, BulkTable::Items];

    fn name(self) -> &'static str {
        match self {
            BulkTable::Plays => "plays",
            BulkTable::Items => "play_items",
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            BulkTable::Plays => &PLAY_WRITE_COLS,
            BulkTable::Items => &ITEM_WRITE_COLS,
        }
    }
}

/// Rows of one table packed for `echostats_insert_rows`: the table's byte
/// ([`BulkTable`]), then the rows' values, the table's columns in order: per value a tag
/// byte, then 8 bytes of little-endian integer, or a 4-byte little-endian length and the
/// UTF-8 text, or nothing for NULL.
#[derive(Debug)]
pub(crate) struct PackedRows {
    bytes: Vec<u8>,
    table: BulkTable,
}

impl PackedRows {
    /// An empty pack of rows of `table`, with room for about `rows` rows.
    pub(crate) fn new(table: BulkTable, rows: usize) -> Self {
        let mut bytes = Vec::with_capacity(1 + rows * 192);
        bytes.push(table as u8);
        PackedRows { bytes, table }
    }

    /// Appends one row: exactly the table's columns.
    pub(crate) fn push<const N: usize>(&mut self, row: [ColumnValue<'_>; N]) {
        debug_assert_eq!(N, self.table.columns().len(), "a row of {}", self.table.name());
        for value in row {
            match value {
                ColumnValue::Int(Some(v)) => pack_int(&mut self.bytes, v),
                // A text of 4 GiB would not fit in a play anyway: an entry is capped at
                // 1 MiB of JSON by the parser.
                ColumnValue::Text(Some(s)) => {
                    pack_text(&mut self.bytes, s.as_bytes()).expect("a play's or item's text is under 4 GiB")
                }
                ColumnValue::Int(None) | ColumnValue::Text(None) => self.bytes.push(TAG_NULL),
            }
        }
    }

    /// The statement inserting these rows; it returns the id of the last one (run it
    /// with [`inserted_ids`]).
    pub(crate) fn into_call<'q>(self) -> Query<'q> {
        sqlx::query(INSERT_ROWS_CALL).bind(self.bytes)
    }

    /// The packed bytes.
    #[cfg(test)]
    fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Appends an integer value to a pack.
fn pack_int(bytes: &mut Vec<u8>, v: i64) {
    bytes.push(TAG_INT);
    bytes.extend_from_slice(&v.to_le_bytes());
}

/// Appends a text value to a pack; `None` if it is 4 GiB or more.
fn pack_text(bytes: &mut Vec<u8>, text: &[u8]) -> Option<()> {
    let len = u32::try_from(text.len()).ok()?;
    bytes.push(TAG_TEXT);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(text);
    Some(())
}

/// A value read back from a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unpacked<'a> {
    Null,
    Int(i64),
    Text(&'a [u8]),
}

/// Reads the values of a pack, one at a time, checking every length against the end.
struct Unpacker<'a> {
    rest: &'a [u8],
}

impl<'a> Unpacker<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!("the packed rows end {} bytes early", n - self.rest.len()));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn next_value(&mut self) -> Result<Unpacked<'a>, String> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            TAG_NULL => Unpacked::Null,
            TAG_INT => Unpacked::Int(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            TAG_TEXT => {
                let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
                Unpacked::Text(self.take(len as usize)?)
            }
            other => return Err(format!("unknown value tag {other} in the packed rows")),
        })
    }
}

/// Gives every SQLite connection opened from now on the `echostats_insert_rows` and
/// `echostats_read_window` functions. Call before opening a SQLite pool; any number of
/// times. It initialises SQLite, so [`crate::sqlite_allocator::use_mimalloc`] must come
/// first to count.
pub(crate) fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<c_int> = OnceLock::new();
    // SAFETY: `init_connection` has the signature SQLite calls auto-extensions with
    // (the binding declares it without arguments, as SQLite's header does).
    let rc = *REGISTERED.get_or_init(|| unsafe { ffi::sqlite3_auto_extension(Some(init_connection)) });
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(format!("SQLite refused to register {INSERT_ROWS_FN} and {READ_WINDOW_FN} (code {rc})"))
    }
}

/// The function of SQLite's C API for a SQL function's body.
type SqlFunction = unsafe extern "C" fn(*mut ffi::sqlite3_context, c_int, *mut *mut ffi::sqlite3_value);

unsafe extern "C" fn init_connection(
    db: *mut ffi::sqlite3,
    _err: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    let functions: [(&str, c_int, SqlFunction); 2] =
        [(INSERT_ROWS_FN, 1, insert_rows), (READ_WINDOW_FN, 7, read_window)];
    for (name, args, body) in functions {
        let name = CString::new(name).expect("no NUL in the name");
        // DIRECTONLY: callable from the statements the store sends, never from a view,
        // trigger or schema object a database file might bring.
        let rc = ffi::sqlite3_create_function_v2(
            db,
            name.as_ptr(),
            args,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DIRECTONLY,
            std::ptr::null_mut(),
            Some(body),
            None,
            None,
            None,
        );
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    ffi::SQLITE_OK
}

/// Sets a function's error: `message`, and SQLite's own `code` where it gave one (disk
/// full, I/O...), so that the error is classified as any other.
unsafe fn result_error(ctx: *mut ffi::sqlite3_context, code: c_int, message: &str) {
    ffi::sqlite3_result_error(ctx, message.as_ptr() as *const c_char, message.len() as c_int);
    // Never SQLITE_MISUSE: sqlx panics on it.
    let code = if code & 0xff == ffi::SQLITE_MISUSE { ffi::SQLITE_ERROR } else { code };
    ffi::sqlite3_result_error_code(ctx, code);
}

/// Rows per step of the function's multi-row INSERTs, largest first: a group of 256
/// rows per statement, the rest of a call in steps of 16, then single rows. A statement
/// costs something besides its rows (its start and end, and the table's AUTOINCREMENT
/// counter read and written once): with 32 rows per statement the import took longer
/// than through sqlx's statements of 444 rows.
const STEP_ROWS: [usize; 3] = [256, 16, 1];

/// The INSERT of `STEP_ROWS[size]` rows of `table`, built once. `OR FAIL`: a row SQLite
/// refuses ends the statement and keeps the rows before it, where the default (`ABORT`)
/// takes them back, which costs a statement journal (a savepoint) per multi-row
/// statement: ~5% of a 1M-entry import's time. Keeping them is safe here: a failed call fails the
/// batch, which is then rolled back whole.
fn insert_sql(table: BulkTable, size: usize) -> &'static CStr {
    static SQL: OnceLock<Vec<Vec<CString>>> = OnceLock::new();
    let build = |table: BulkTable, rows: usize| {
        let columns = table.columns();
        let cols = columns.len();
        let tuples: Vec<String> = (0..rows)
            .map(|r| {
                let params: Vec<String> = (1..=cols).map(|c| format!("?{}", r * cols + c)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = format!("INSERT OR FAIL INTO {} ({}) VALUES {}", table.name(), columns.join(", "), tuples.join(", "));
        CString::new(sql).expect("no NUL in the SQL")
    };
    let all = SQL.get_or_init(|| {
        BulkTable::ALL.iter().map(|&table| STEP_ROWS.iter().map(|&rows| build(table, rows)).collect()).collect()
    });
    &all[table as usize][size]
}

/// `echostats_insert_rows(rows BLOB)`: inserts the packed rows into their table
/// ([`PackedRows`]), returns the id of the last one. Every row must get the id after the
/// one before (the caller knows them all from the last). The connection must be inside a transaction: a failed call may have
/// inserted some rows, which the caller's rollback takes back (a failed write poisons
/// the batch, which is then rolled back whole). A savepoint per call did that itself,
/// but cost ~8% of the import's CPU once a transaction held many pages.
unsafe extern "C" fn insert_rows(ctx: *mut ffi::sqlite3_context, argc: c_int, argv: *mut *mut ffi::sqlite3_value) {
    let db = ffi::sqlite3_context_db_handle(ctx);
    let result = if argc != 1 {
        Err((ffi::SQLITE_ERROR, format!("{INSERT_ROWS_FN} takes one argument")))
    } else {
        let arg = *argv;
        let len = ffi::sqlite3_value_bytes(arg);
        let ptr = ffi::sqlite3_value_blob(arg) as *const u8;
        let packed: &[u8] = if ptr.is_null() || len <= 0 {
            &[]
        } else {
            // SAFETY: SQLite keeps the argument's bytes unchanged until the function
            // returns.
            std::slice::from_raw_parts(ptr, len as usize)
        };
        if ffi::sqlite3_get_autocommit(db) != 0 {
            Err((ffi::SQLITE_ERROR, format!("{INSERT_ROWS_FN} must run inside a transaction")))
        } else {
            insert_packed(db, packed)
        }
    };
    match result {
        Ok(last_id) => ffi::sqlite3_result_int64(ctx, last_id),
        Err((code, message)) => result_error(ctx, code, &message),
    }
}

/// Runs `call` ([`PackedRows::into_call`]) of `rows` rows and returns the ids they got,
/// in pack order: the function checked that they are consecutive and end at the id it
/// returns.
pub(crate) async fn inserted_ids(
    conn: &mut sqlx::AnyConnection,
    call: Query<'_>,
    rows: usize,
) -> SqlResult<std::ops::RangeInclusive<i64>> {
    use sqlx::{Executor, Row};
    let last: i64 = conn.fetch_one(call).await?.try_get(0)?;
    Ok(last - rows as i64 + 1..=last)
}

/// Owns a prepared statement: finalized however the function ends.
struct Statement(*mut ffi::sqlite3_stmt);

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement came from sqlite3_prepare_v3 and is finalized once.
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}

/// SQLite's message for the last error on `db`, with `what` was being done.
unsafe fn db_error(db: *mut ffi::sqlite3, rc: c_int, what: &str) -> (c_int, String) {
    let message = CStr::from_ptr(ffi::sqlite3_errmsg(db)).to_string_lossy();
    (rc, format!("{what}: {message}"))
}

/// Prepares `sql` on `db`.
unsafe fn prepare(db: *mut ffi::sqlite3, sql: &CStr, function: &str) -> Result<Statement, (c_int, String)> {
    let mut stmt = std::ptr::null_mut();
    let rc = ffi::sqlite3_prepare_v3(db, sql.as_ptr(), -1, 0, &mut stmt, std::ptr::null_mut());
    if rc != ffi::SQLITE_OK {
        return Err(db_error(db, rc, &format!("{function}: preparing its statement")));
    }
    Ok(Statement(stmt))
}

unsafe fn insert_packed(db: *mut ffi::sqlite3, packed: &[u8]) -> Result<i64, (c_int, String)> {
    let (table, packed) = match packed.split_first() {
        Some((&tag, rows)) => match BulkTable::ALL.into_iter().find(|t| *t as u8 == tag) {
            Some(table) => (table, rows),
            None => return Err((ffi::SQLITE_ERROR, format!("{INSERT_ROWS_FN}: unknown table tag {tag}"))),
        },
        None => return Err((ffi::SQLITE_ERROR, format!("{INSERT_ROWS_FN}: no rows given"))),
    };
    let cols = table.columns().len();
    let group_rows = STEP_ROWS[0];
    // Prepared when first needed.
    let mut statements: [Option<Statement>; STEP_ROWS.len()] = Default::default();
    let mut values = Unpacker { rest: packed };
    let mut group: Vec<Unpacked<'_>> = Vec::with_capacity(group_rows * cols);
    let mut last_id: Option<i64> = None;
    // Rows inserted so far.
    let mut done = 0usize;
    loop {
        // The values of the next rows, a whole group but at the end.
        group.clear();
        while group.len() < group_rows * cols && !values.rest.is_empty() {
            let row = done + group.len() / cols;
            let value =
                values.next_value().map_err(|e| (ffi::SQLITE_ERROR, format!("{INSERT_ROWS_FN}: row {row}: {e}")))?;
            group.push(value);
        }
        if group.is_empty() {
            break;
        }
        if !group.len().is_multiple_of(cols) {
            let row = done + group.len() / cols;
            return Err((ffi::SQLITE_ERROR, format!("{INSERT_ROWS_FN}: row {row}: the packed rows end inside it")));
        }
        let mut rest = group.as_slice();
        while !rest.is_empty() {
            let size = STEP_ROWS.iter().position(|&rows| rows * cols <= rest.len()).expect("a single row fits");
            let step_rows = STEP_ROWS[size];
            let stmt = match &mut statements[size] {
                Some(stmt) => stmt,
                slot @ None => slot.insert(prepare(db, insert_sql(table, size), INSERT_ROWS_FN)?),
            };
            let (step_values, after) = rest.split_at(step_rows * cols);
            rest = after;
            // For messages: the row, or rows, of this step.
            let rows = || match step_rows {
                1 => format!("row {done}"),
                n => format!("rows {done}..{}", done + n - 1),
            };
            for (param, value) in (1..).zip(step_values) {
                let rc = match *value {
                    Unpacked::Null => ffi::sqlite3_bind_null(stmt.0, param),
                    Unpacked::Int(v) => ffi::sqlite3_bind_int64(stmt.0, param, v),
                    // SQLITE_STATIC: the bytes are the argument's, alive until the
                    // function returns, and every step happens before that.
                    Unpacked::Text(bytes) => ffi::sqlite3_bind_text64(
                        stmt.0,
                        param,
                        bytes.as_ptr() as *const c_char,
                        bytes.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                };
                if rc != ffi::SQLITE_OK {
                    return Err(db_error(db, rc, &format!("{INSERT_ROWS_FN}: {}: binding value {param}", rows())));
                }
            }
            let rc = ffi::sqlite3_step(stmt.0);
            if rc != ffi::SQLITE_DONE {
                return Err(db_error(db, rc, &format!("{INSERT_ROWS_FN}: {}: inserting", rows())));
            }
            ffi::sqlite3_reset(stmt.0);
            // The rows of a statement get consecutive ids ending at the last one; each
            // statement's must follow the one before.
            let id = ffi::sqlite3_last_insert_rowid(db);
            let step = step_rows as i64;
            if ffi::sqlite3_changes64(db) != step || last_id.is_some_and(|last| id != last + step) {
                let after = last_id.map_or_else(|| "none".to_string(), |l| l.to_string());
                return Err((
                    ffi::SQLITE_ERROR,
                    format!("{INSERT_ROWS_FN}: {} ended at id {id} after {after}", rows()),
                ));
            }
            last_id = Some(id);
            done += step_rows;
        }
    }
    last_id.ok_or_else(|| (ffi::SQLITE_ERROR, format!("{INSERT_ROWS_FN}: no rows given")))
}

/// The kinds of plays a read wants, as the read function takes them: a bit per kind code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KindMask(i64);

impl KindMask {
    /// Every kind (codes 0 to 63; play kinds are small codes).
    pub(crate) const ALL: KindMask = KindMask(-1);

    /// The kinds of these codes.
    pub(crate) fn of(kinds: impl IntoIterator<Item = i32>) -> Self {
        KindMask(kinds.into_iter().fold(0i64, |mask, kind| {
            debug_assert!((0..63).contains(&kind), "kind code {kind} fits the mask");
            mask | 1 << kind
        }))
    }
}

/// Plays read per call of the read function: bounds a pack in memory beside the entries
/// already decoded (a handful in unit tests, so that their reads take several pages).
pub(crate) const READ_PAGE: i64 = if cfg!(test) { 64 } else { 4096 };

/// The plays of a user that end in a time range, read through the read function a page
/// of [`READ_PAGE`] at a time, in (end time, id) order. Each page is a call of its own:
/// read them all in one transaction to see one state of the plays.
pub(crate) struct PlayPages<'a> {
    user_id: &'a str,
    lo: i64,
    hi: i64,
    kinds: KindMask,
    after: Option<WindowPage>,
    done: bool,
}

impl<'a> PlayPages<'a> {
    /// The plays of `user_id` of `kinds` that end in `lo..=hi` (epoch ms).
    pub(crate) fn new(user_id: &'a str, lo: i64, hi: i64, kinds: KindMask) -> Self {
        PlayPages { user_id, lo, hi, kinds, after: None, done: false }
    }

    /// The next page, each entry with its id; `None` once every play was read.
    pub(crate) async fn next(&mut self, conn: &mut AnyConnection) -> SqlResult<Option<Vec<(i64, HistoryEntry)>>> {
        if self.done {
            return Ok(None);
        }
        let call = window_call(self.user_id, self.lo, self.hi, self.kinds, self.after, READ_PAGE);
        let packed: Vec<u8> = conn.fetch_one(call).await?.try_get(0)?;
        let mut page = Vec::new();
        unpack_rows(&packed, PLAY_READ_COL_COUNT, |row| {
            page.push(entry_from_row(row)?);
            Ok(())
        })?;
        self.done = (page.len() as i64) < READ_PAGE;
        self.after =
            page.last().map(|(id, last)| WindowPage { played_at: last.record.played_at.timestamp_millis(), id: *id });
        Ok(Some(page).filter(|page| !page.is_empty()))
    }
}

/// Where a page of a window starts: after the row that ended at `played_at` (epoch ms)
/// with id `id`, the last of the page before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowPage {
    pub played_at: i64,
    pub id: i64,
}

/// The call reading, packed, the plays of `user_id` that end in `lo..=hi` (epoch ms)
/// and are of a kind in `kinds` (play kind codes), at most `limit` of them from `after`
/// on (`None`: from the start), in (end time, id) order: each row's [`PLAY_READ_COLS`]
/// ([`unpack_rows`]).
///
/// Through sqlx, every value of every row was copied by SQLite for sqlx's thread, then
/// turned into an `Any` value, then into the entry's: windows of a few thousand plays,
/// read for each chunk of account data, took most of that part of an import.
pub(crate) fn window_call<'q>(
    user_id: &'q str,
    lo: i64,
    hi: i64,
    kinds: KindMask,
    after: Option<WindowPage>,
    limit: i64,
) -> Query<'q> {
    let after = after.unwrap_or(WindowPage { played_at: lo, id: i64::MIN });
    // The page's first end time is its lower bound too: SQLite starts the index range at
    // the plain bound, not at the row value, so each page scanned from the window's
    // start (a CSV export of a million plays took 13 s instead of 3.6 s).
    sqlx::query(READ_WINDOW_CALL)
        .bind(user_id)
        .bind(lo.max(after.played_at))
        .bind(hi)
        .bind(kinds.0)
        .bind(after.played_at)
        .bind(after.id)
        .bind(limit)
}

/// Calls `each` with the values of every row of a pack the read function returned
/// (`columns` values per row); returns the number of rows.
pub(crate) fn unpack_rows(
    packed: &[u8],
    columns: usize,
    mut each: impl FnMut(&[Unpacked<'_>]) -> SqlResult<()>,
) -> SqlResult<usize> {
    let mut values = Unpacker { rest: packed };
    let mut row = Vec::with_capacity(columns);
    let mut rows = 0;
    while !values.rest.is_empty() {
        row.clear();
        for _ in 0..columns {
            let value =
                values.next_value().map_err(|e| SqlError::Corrupt(format!("{READ_WINDOW_FN}: row {rows}: {e}")))?;
            row.push(value);
        }
        each(&row)?;
        rows += 1;
    }
    Ok(rows)
}

impl RowValues for [Unpacked<'_>] {
    fn int(&self, i: usize) -> SqlResult<Option<i64>> {
        match self.get(i) {
            Some(Unpacked::Null) => Ok(None),
            Some(Unpacked::Int(v)) => Ok(Some(*v)),
            Some(Unpacked::Text(_)) => {
                Err(SqlError::Corrupt(format!("column {i} holds text, an integer was expected")))
            }
            None => Err(SqlError::Corrupt(format!("no column {i} in a row of {}", self.len()))),
        }
    }

    fn text(&self, i: usize) -> SqlResult<Option<String>> {
        match self.get(i) {
            Some(Unpacked::Null) => Ok(None),
            Some(Unpacked::Text(bytes)) => std::str::from_utf8(bytes)
                .map(|s| Some(s.to_owned()))
                .map_err(|e| SqlError::Corrupt(format!("column {i} is not UTF-8: {e}"))),
            Some(Unpacked::Int(_)) => Err(SqlError::Corrupt(format!("column {i} holds an integer, text was expected"))),
            None => Err(SqlError::Corrupt(format!("no column {i} in a row of {}", self.len()))),
        }
    }
}

/// `echostats_read_window(user_id, lo, hi, kinds, after_played_at, after_id, limit)`: the rows of
/// [`read_window_sql`], packed as [`PackedRows`] packs values (without a table byte).
unsafe extern "C" fn read_window(ctx: *mut ffi::sqlite3_context, argc: c_int, argv: *mut *mut ffi::sqlite3_value) {
    let db = ffi::sqlite3_context_db_handle(ctx);
    let result = if argc != 7 {
        Err((ffi::SQLITE_ERROR, format!("{READ_WINDOW_FN} takes seven arguments")))
    } else {
        // SAFETY: SQLite passes `argc` values.
        read_packed(db, std::slice::from_raw_parts(argv, argc as usize))
    };
    match result {
        // SQLITE_TRANSIENT: SQLite copies the bytes before the vector is freed.
        Ok(bytes) => ffi::sqlite3_result_blob64(
            ctx,
            bytes.as_ptr() as *const std::ffi::c_void,
            bytes.len() as u64,
            ffi::SQLITE_TRANSIENT(),
        ),
        Err((code, message)) => result_error(ctx, code, &message),
    }
}

/// Runs [`read_window_sql`] with `args` as its parameters, packing every row.
unsafe fn read_packed(db: *mut ffi::sqlite3, args: &[*mut ffi::sqlite3_value]) -> Result<Vec<u8>, (c_int, String)> {
    let stmt = prepare(db, read_window_sql(), READ_WINDOW_FN)?;
    for (param, &value) in (1..).zip(args) {
        let rc = ffi::sqlite3_bind_value(stmt.0, param, value);
        if rc != ffi::SQLITE_OK {
            return Err(db_error(db, rc, &format!("{READ_WINDOW_FN}: binding argument {param}")));
        }
    }
    let columns = ffi::sqlite3_column_count(stmt.0);
    let mut bytes = Vec::new();
    loop {
        match ffi::sqlite3_step(stmt.0) {
            ffi::SQLITE_ROW => {}
            ffi::SQLITE_DONE => return Ok(bytes),
            rc => return Err(db_error(db, rc, &format!("{READ_WINDOW_FN}: reading"))),
        }
        for column in 0..columns {
            match ffi::sqlite3_column_type(stmt.0, column) {
                ffi::SQLITE_NULL => bytes.push(TAG_NULL),
                ffi::SQLITE_INTEGER => pack_int(&mut bytes, ffi::sqlite3_column_int64(stmt.0, column)),
                ffi::SQLITE_TEXT => {
                    let ptr = ffi::sqlite3_column_text(stmt.0, column);
                    let len = ffi::sqlite3_column_bytes(stmt.0, column);
                    let text: &[u8] = if ptr.is_null() || len <= 0 {
                        &[]
                    } else {
                        // SAFETY: SQLite keeps the text until the next step.
                        std::slice::from_raw_parts(ptr, len as usize)
                    };
                    pack_text(&mut bytes, text)
                        .ok_or_else(|| (ffi::SQLITE_TOOBIG, format!("{READ_WINDOW_FN}: a text of 4 GiB or more")))?;
                }
                other => {
                    let name = CStr::from_ptr(ffi::sqlite3_column_name(stmt.0, column)).to_string_lossy();
                    return Err((
                        ffi::SQLITE_MISMATCH,
                        format!("{READ_WINDOW_FN}: column {name} holds a value of SQLite type {other}, not an integer or text"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(user: &'a str, at: i64, platform: Option<&'a str>) -> [ColumnValue<'a>; PLAY_WRITE_COLS.len()] {
        let mut values = [ColumnValue::Int(None); PLAY_WRITE_COLS.len()];
        values[0] = ColumnValue::Text(Some(user));
        values[1] = ColumnValue::Int(Some(at));
        for (i, v) in [(2, 40_000), (3, 0), (4, 0), (5, 1), (6, 1)] {
            values[i] = ColumnValue::Int(Some(v));
        }
        values[7] = ColumnValue::Text(platform);
        values
    }

    /// An item row: its identity, kind 0 and a track name.
    fn item_row(ident: &str) -> [ColumnValue<'_>; ITEM_WRITE_COLS.len()] {
        let mut values = [ColumnValue::Text(None); ITEM_WRITE_COLS.len()];
        values[0] = ColumnValue::Text(Some(ident));
        values[1] = ColumnValue::Int(Some(0));
        values[3] = ColumnValue::Text(Some("A track"));
        values
    }

    /// The (id, value) rows `sql` selects.
    async fn id_pairs<T>(conn: &mut sqlx::AnyConnection, sql: &str) -> Vec<(i64, T)>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        use sqlx::Row;
        sqlx::query(sql).fetch_all(conn).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    #[test]
    fn packed_values_read_back_as_written() {
        let mut packed = PackedRows::new(BulkTable::Plays, 2);
        packed.push(row("u1", -5, Some("Android ✓")));
        packed.push(row("", i64::MAX, None));
        let bytes = packed.into_bytes();
        assert_eq!(bytes[0], BulkTable::Plays as u8, "the pack opens with its table");
        let mut values = Unpacker { rest: &bytes[1..] };
        let mut read = Vec::new();
        while !values.rest.is_empty() {
            read.push(values.next_value().unwrap());
        }
        assert_eq!(read.len(), 2 * PLAY_WRITE_COLS.len());
        assert_eq!(read[0], Unpacked::Text(b"u1"));
        assert_eq!(read[1], Unpacked::Int(-5));
        assert_eq!(read[2], Unpacked::Int(40_000));
        assert_eq!(read[11], Unpacked::Null);
        assert_eq!(read[7], Unpacked::Text("Android ✓".as_bytes()));
        assert_eq!(read[PLAY_WRITE_COLS.len()], Unpacked::Text(b""));
        assert_eq!(read[PLAY_WRITE_COLS.len() + 1], Unpacked::Int(i64::MAX));
        assert_eq!(read[PLAY_WRITE_COLS.len() + 7], Unpacked::Null);
        assert_eq!(read[PLAY_WRITE_COLS.len() + 11], Unpacked::Null);
    }

    #[test]
    fn a_cut_or_unknown_pack_is_an_error_not_a_read_past_its_end() {
        let mut packed = PackedRows::new(BulkTable::Plays, 1);
        packed.push(row("user", 1, Some("platform")));
        let bytes = packed.into_bytes();
        let mut values = Unpacker { rest: &bytes[1..4] };
        assert_eq!(values.next_value().unwrap_err(), "the packed rows end 2 bytes early");
        let mut values = Unpacker { rest: &[9] };
        assert_eq!(values.next_value().unwrap_err(), "unknown value tag 9 in the packed rows");
    }

    /// The function on a real connection: rows land with consecutive ids inside a
    /// transaction; outside one, or given a damaged pack, it fails and writes nothing.
    #[tokio::test]
    async fn the_function_inserts_in_a_transaction_and_refuses_damage() {
        use sqlx::{Executor, Row};
        let store = crate::SqlStore::open("sqlite::memory:").await.unwrap();
        let pool = store.pool();
        let call = INSERT_ROWS_CALL;
        let count =
            || async { sqlx::query("SELECT COUNT(*) FROM plays").fetch_one(pool).await.unwrap().get::<i64, _>(0) };
        let pack = |rows: i64| {
            let mut packed = PackedRows::new(BulkTable::Plays, rows as usize);
            for at in 1..=rows {
                packed.push(row("user", at * 10, Some("web")));
            }
            packed.into_bytes()
        };
        // A whole group, then two steps of 16 rows and three single rows.
        let rows = (STEP_ROWS[0] + 2 * STEP_ROWS[1] + 3) as i64;
        let bytes = pack(rows);

        let outside =
            sqlx::query(call).bind(bytes.clone()).fetch_one(pool).await.err().expect("refused outside a transaction");
        assert!(outside.to_string().contains("must run inside a transaction"), "{outside}");

        let mut tx = pool.begin().await.unwrap();
        let last: i64 = sqlx::query(call).bind(bytes.clone()).fetch_one(&mut *tx).await.unwrap().get(0);
        let stored: Vec<(i64, i64)> = id_pairs(&mut tx, "SELECT id, played_at FROM plays ORDER BY id").await;
        let expected: Vec<(i64, i64)> = (last - rows + 1..=last).zip((1..=rows).map(|r| r * 10)).collect();
        assert_eq!(stored, expected, "consecutive ids ending at the one returned, the rows in pack order");
        let platform: String = tx.fetch_one("SELECT platform FROM plays WHERE played_at = 20").await.unwrap().get(0);
        assert_eq!(platform, "web");

        tx.commit().await.unwrap();

        // Packs cut inside a row after a whole group, and inside a single row, are
        // refused naming the row; what the call inserted before is the caller's to roll
        // back.
        let mut tx = pool.begin().await.unwrap();
        for (cut_rows, cut_in_row) in [(STEP_ROWS[0] as i64 + 5, STEP_ROWS[0] + 1), (3, 1)] {
            let bytes = pack(cut_rows);
            // After the table's byte, rows of equal length.
            let row_len = (bytes.len() - 1) / cut_rows as usize;
            let cut = &bytes[..1 + row_len * cut_in_row + row_len / 2];
            let damaged =
                sqlx::query(call).bind(cut.to_vec()).fetch_one(&mut *tx).await.err().expect("refused a cut pack");
            assert!(damaged.to_string().contains(&format!("row {cut_in_row}: the packed rows end")), "{damaged}");
        }
        // A row SQLite refuses (NOT NULL) inside a 16-row step after a whole group: the
        // call fails naming the step, and the caller's rollback takes back every row of
        // the call, those of the step before the refused row included.
        let mut refused = PackedRows::new(BulkTable::Plays, 300);
        for at in 0..STEP_ROWS[0] as i64 + 20 {
            let mut values = row("user", 1_000 + at, None);
            if at == STEP_ROWS[0] as i64 + 3 {
                values[0] = ColumnValue::Text(None);
            }
            refused.push(values);
        }
        let error = refused.into_call().fetch_one(&mut *tx).await.err().expect("refused");
        let message = error.to_string();
        assert!(message.contains("rows 256..271: inserting") && message.contains("NOT NULL"), "{message}");
        tx.rollback().await.unwrap();
        assert_eq!(count().await, rows);
    }

    /// User a's plays of `kinds` ending from 2 s to 8 s after the epoch, through the
    /// read function: `limit` at most, from `after` on.
    async fn page(
        conn: &mut sqlx::AnyConnection,
        kinds: &[i32],
        after: Option<WindowPage>,
        limit: i64,
    ) -> Vec<echostats_core::model::HistoryEntry> {
        use sqlx::Row;
        let call = window_call("a", 2_000, 8_000, KindMask::of(kinds.iter().copied()), after, limit);
        let packed: Vec<u8> = call.fetch_one(conn).await.unwrap().get(0);
        let mut entries = Vec::new();
        unpack_rows(&packed, crate::codec::PLAY_READ_COL_COUNT, |row| {
            entries.push(crate::codec::entry_from_row(row)?.1);
            Ok(())
        })
        .unwrap();
        entries
    }

    /// The read function returns what sqlx reads from the same view, decoded by the same
    /// `entry_from_row`: the user's plays of the kinds asked for in the time range, in
    /// id order, a page at a time. A value it cannot pack is an error naming its column.
    #[tokio::test]
    async fn the_window_is_read_as_sqlx_reads_it_a_page_at_a_time() {
        use crate::codec::entry_from_row;
        use echostats_core::model::HistoryEntry;
        use sqlx::{Executor, Row};
        let store = crate::SqlStore::open("sqlite::memory:").await.unwrap();
        let mut tx = store.pool().begin().await.unwrap();
        let mut item = PackedRows::new(BulkTable::Items, 1);
        item.push(item_row("0|7:a track"));
        let item_id: i64 = item.into_call().fetch_one(&mut *tx).await.unwrap().get(0);
        let mut plays = PackedRows::new(BulkTable::Plays, 12);
        let platforms = ["android", "web ✓"];
        for (user, at) in (1..=10).map(|i| ("a", i * 1_000)).chain([("b", 5_000)]) {
            let mut values = row(user, at, Some(platforms[(at / 1_000) as usize % 2]));
            values[3] = ColumnValue::Int(Some(at / 1_000 % 2)); // kind: track, episode
            values[4] = ColumnValue::Int(Some(3)); // origin: extended history
            values[6] = ColumnValue::Int(Some(item_id));
            plays.push(values);
        }
        plays.into_call().fetch_one(&mut *tx).await.unwrap();

        let tracks = page(&mut tx, &[0], None, 100).await;
        let sql = format!(
            "SELECT {PLAY_READ_COLS} FROM play_rows WHERE user_id = 'a' AND played_at BETWEEN 2000 AND 8000 \
             AND kind = 0 ORDER BY id"
        );
        let expected: Vec<HistoryEntry> =
            tx.fetch_all(sql.as_str()).await.unwrap().iter().map(|r| entry_from_row(r).unwrap().1).collect();
        let at = |entries: &[HistoryEntry]| entries.iter().map(|e| e.record.played_at.timestamp()).collect::<Vec<_>>();
        assert_eq!(at(&expected), [2, 4, 6, 8], "user a's tracks in the range");
        assert_eq!(tracks, expected);
        assert_eq!(tracks[1].record.platform.as_deref(), Some("android"));
        assert_eq!(
            at(&page(&mut tx, &[0, 1], None, 100).await),
            [2, 3, 4, 5, 6, 7, 8],
            "both kinds, user b's play left out"
        );

        let first = page(&mut tx, &[0, 1], None, 3).await;
        assert_eq!(at(&first), [2, 3, 4]);
        let after = WindowPage { played_at: 4_000, id: first[2].id.parse().unwrap() };
        assert_eq!(at(&page(&mut tx, &[0, 1], Some(after), 3).await), [5, 6, 7], "the next page starts after the last");
        // A play ending at the same time as the last of a page, with a higher id, is on
        // the next page.
        let mut same_time = PackedRows::new(BulkTable::Plays, 1);
        let mut values = row("a", 4_000, None);
        (values[4], values[6]) = (ColumnValue::Int(Some(3)), ColumnValue::Int(Some(item_id)));
        same_time.push(values);
        let same_id: i64 = same_time.into_call().fetch_one(&mut *tx).await.unwrap().get(0);
        let next = page(&mut tx, &[0, 1], Some(after), 3).await;
        assert_eq!((at(&next), next[0].id.clone()), (vec![4, 5, 6], same_id.to_string()));

        tx.execute("UPDATE plays SET platform = X'00ff' WHERE played_at = 6000").await.unwrap();
        let call = window_call("a", 2_000, 8_000, KindMask::of([0]), None, 100);
        let error = call.fetch_one(&mut *tx).await.err().expect("a BLOB is not packed");
        assert!(error.to_string().contains("column platform holds a value of SQLite type 4"), "{error}");
    }

    /// Items go through the same function: consecutive ids in pack order, as for plays.
    /// A pack naming no known table is refused.
    #[tokio::test]
    async fn items_are_inserted_and_an_unknown_table_refused() {
        use sqlx::Row;
        let store = crate::SqlStore::open("sqlite::memory:").await.unwrap();
        let mut tx = store.pool().begin().await.unwrap();
        let mut packed = PackedRows::new(BulkTable::Items, 300);
        let idents: Vec<String> = (0..300).map(|i| format!("0|6:item{i:02}")).collect();
        for ident in &idents {
            packed.push(item_row(ident));
        }
        let last: i64 = packed.into_call().fetch_one(&mut *tx).await.unwrap().get(0);
        let stored: Vec<(i64, String)> = id_pairs(&mut tx, "SELECT id, ident FROM play_items ORDER BY id").await;
        let expected: Vec<(i64, String)> = (last - 299..=last).zip(idents.iter().cloned()).collect();
        assert_eq!(stored, expected);

        let error = sqlx::query(INSERT_ROWS_CALL).bind(vec![7u8]).fetch_one(&mut *tx).await.err().expect("refused");
        assert!(error.to_string().contains("unknown table tag 7"), "{error}");
        // The identities are unique: an item stored twice fails the call.
        let mut again = PackedRows::new(BulkTable::Items, 1);
        again.push(item_row(&idents[0]));
        let error = again.into_call().fetch_one(&mut *tx).await.err().expect("refused");
        assert!(error.to_string().contains("UNIQUE"), "{error}");
    }
}
