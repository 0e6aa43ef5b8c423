//! SQLite's memory allocator: mimalloc instead of the C library's malloc, for processes
//! that read a lot of rows.
//!
//! sqlx copies every column of every row it reads (`sqlite3_value_dup`) on its SQLite
//! thread, and the copies are freed on the thread that decodes the row. glibc's malloc
//! handles that hand-over badly (arena locks, consolidation): it was ~40% of the time of
//! reading a million plays. With mimalloc as Rust's allocator, that read (`plays_in`,
//! 984k plays) took 5.0-6.2 s with SQLite on the C library's malloc, 3.8-4.2 s with
//! SQLite on mimalloc too.
//!
//! Opt-in, because it costs memory where reads are few: an import of a million entries
//! peaked 20-45 MB higher (mimalloc keeps freed pages a while on each SQLite thread) and
//! ran no faster. The Python module turns it on; the `echostats` binary does not.
//! SQLite takes an allocator only before it first initialises, so call
//! [`use_mimalloc`] before opening the first SQLite store of the process.

use libmimalloc_sys as mi;
use libsqlite3_sys as ffi;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    mi::mi_malloc(n.max(0) as usize)
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    mi::mi_free(p)
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    mi::mi_realloc(p, n.max(0) as usize)
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    c_int::try_from(mi::mi_usable_size(p)).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    c_int::try_from(mi::mi_good_size(n.max(0) as usize)).unwrap_or(n)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// Makes SQLite allocate with mimalloc. Takes effect only before SQLite is first used in
/// the process (SQLite refuses the change once initialised); returns whether SQLite uses
/// mimalloc. Safe to call any number of times.
pub fn use_mimalloc() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(x_malloc),
            xFree: Some(x_free),
            xRealloc: Some(x_realloc),
            xSize: Some(x_size),
            xRoundup: Some(x_roundup),
            xInit: Some(x_init),
            xShutdown: Some(x_shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to a `sqlite3_mem_methods`, which
        // SQLite copies before returning. The functions are thread-safe (mimalloc) and
        // pair with each other: nothing allocated before is freed through them, since
        // SQLite accepts the change only while it is not initialised, before it allocates.
        let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods as *const ffi::sqlite3_mem_methods) };
        if rc != ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite was already initialised; it keeps the C library's allocator");
        }
        rc == ffi::SQLITE_OK
    })
}
