//! The few MPI calls this crate makes, over `mpi::ffi` (rsmpi's bindings),
//! each returning its error code as a [`MpiError`] (the communicators use
//! `MPI_ERRORS_RETURN`), and each made under one process-wide lock: MPI is
//! initialized with `MPI_THREAD_SERIALIZED`, and a process may hold
//! several pools (a dispatcher thread each) and, in a worker, a heartbeat
//! thread.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use mpi::ffi;

use crate::error::MpiError;

static LOCK: Mutex<()> = Mutex::new(());

/// Set (under [`lock`]) once MPI is finalized: later calls fail instead of
/// reaching the library.
static FINALIZED: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_finalized() {
    FINALIZED.store(true, Ordering::SeqCst);
}

pub(crate) fn is_finalized() -> bool {
    FINALIZED.load(Ordering::SeqCst)
}

fn live() -> Result<MutexGuard<'static, ()>, MpiError> {
    let g = lock();
    if is_finalized() {
        return Err(MpiError::Setup("MPI is already finalized".into()));
    }
    Ok(g)
}

/// Holds the process-wide MPI lock.
pub(crate) fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The message text of an MPI error code.
pub(crate) fn error_string(code: c_int) -> String {
    let mut buf = vec![0 as c_char; ffi::MPI_MAX_ERROR_STRING as usize + 1];
    let mut len: c_int = 0;
    // SAFETY: `buf` has room for MPI_MAX_ERROR_STRING characters and a
    // terminator, as the call requires; MPI_Error_string may be called at
    // any time, even before MPI_Init.
    let rc = unsafe { ffi::MPI_Error_string(code, buf.as_mut_ptr(), &mut len) };
    if rc != 0 {
        return format!("MPI error code {code}");
    }
    // SAFETY: MPI_Error_string wrote a NUL-terminated string into `buf`.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// `Ok` for `MPI_SUCCESS`, else the call's error.
pub(crate) fn check(call: &'static str, rc: c_int) -> Result<(), MpiError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(MpiError::Call {
            call,
            code: rc,
            message: error_string(rc),
        })
    }
}

/// A communicator handle (a pointer into the MPI library, which any thread
/// may use under [`lock`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Comm(pub(crate) ffi::MPI_Comm);

// SAFETY: an MPI communicator handle is an opaque reference to library
// state; the library was initialized with MPI_THREAD_SERIALIZED and every
// call through a `Comm` is made under the process-wide `lock`.
unsafe impl std::marker::Send for Comm {}
// SAFETY: as for `Send`.
unsafe impl Sync for Comm {}

impl Comm {
    pub(crate) fn world() -> Comm {
        // SAFETY: reading an extern constant of the MPI library.
        Comm(unsafe { ffi::RSMPI_COMM_WORLD })
    }

    pub(crate) fn self_() -> Comm {
        // SAFETY: as above.
        Comm(unsafe { ffi::RSMPI_COMM_SELF })
    }

    fn is_null(&self) -> bool {
        // SAFETY: as above.
        self.0 == unsafe { ffi::RSMPI_COMM_NULL }
    }

    /// The parent intercommunicator of a process started by
    /// `MPI_Comm_spawn`, `None` otherwise.
    pub(crate) fn parent() -> Result<Option<Comm>, MpiError> {
        let _g = live()?;
        // SAFETY: MPI_COMM_NULL is a valid initial value of the out-parameter.
        let mut c = Comm(unsafe { ffi::RSMPI_COMM_NULL });
        // SAFETY: MPI is initialized; `c.0` is a valid out-parameter.
        check("MPI_Comm_get_parent", unsafe {
            ffi::MPI_Comm_get_parent(&mut c.0)
        })?;
        Ok(if c.is_null() { None } else { Some(c) })
    }

    /// Makes MPI errors on this communicator return codes instead of
    /// aborting the job.
    pub(crate) fn errors_return(&self) -> Result<(), MpiError> {
        let _g = live()?;
        // SAFETY: a valid communicator and a predefined error handler.
        check("MPI_Comm_set_errhandler", unsafe {
            ffi::MPI_Comm_set_errhandler(self.0, ffi::RSMPI_ERRORS_RETURN)
        })
    }

    /// This process's rank in the (local group of the) communicator.
    pub(crate) fn rank(&self) -> Result<i32, MpiError> {
        let _g = live()?;
        let mut r: c_int = 0;
        // SAFETY: a valid communicator and out-parameter.
        check("MPI_Comm_rank", unsafe {
            ffi::MPI_Comm_rank(self.0, &mut r)
        })?;
        Ok(r)
    }

    /// The size of the (local group of the) communicator.
    pub(crate) fn size(&self) -> Result<i32, MpiError> {
        let _g = live()?;
        let mut r: c_int = 0;
        // SAFETY: a valid communicator and out-parameter.
        check("MPI_Comm_size", unsafe {
            ffi::MPI_Comm_size(self.0, &mut r)
        })?;
        Ok(r)
    }

    /// Starts `n` copies of `exe` with `args` (`MPI_Comm_spawn` from this
    /// process alone) and returns the intercommunicator to them.
    pub(crate) fn spawn(
        exe: &str,
        args: &[&str],
        n: i32,
        info: &[(String, String)],
    ) -> Result<Comm, MpiError> {
        let bad = |e: std::ffi::NulError| MpiError::Protocol(format!("spawn argument: {e}"));
        let cmd = CString::new(exe).map_err(bad)?;
        let cargs: Vec<CString> = args
            .iter()
            .map(|a| CString::new(*a))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|a| a.as_ptr() as *mut c_char).collect();
        argv.push(std::ptr::null_mut());
        let _g = live()?;
        // SAFETY: MPI_INFO_NULL is a valid value of an MPI_Info.
        let mut minfo = unsafe { ffi::RSMPI_INFO_NULL };
        if !info.is_empty() {
            // SAFETY: a valid out-parameter.
            check("MPI_Info_create", unsafe {
                ffi::MPI_Info_create(&mut minfo)
            })?;
            for (k, v) in info {
                let k = CString::new(k.as_str()).map_err(bad)?;
                let v = CString::new(v.as_str()).map_err(bad)?;
                // SAFETY: a live info object and NUL-terminated strings.
                check("MPI_Info_set", unsafe {
                    ffi::MPI_Info_set(minfo, k.as_ptr(), v.as_ptr())
                })?;
            }
        }
        // SAFETY: as above.
        let mut inter = Comm(unsafe { ffi::RSMPI_COMM_NULL });
        let mut codes = vec![0 as c_int; n.max(0) as usize];
        // SAFETY: `cmd` and `argv` (NULL-terminated) outlive the call,
        // `codes` has room for `n` codes, MPI_COMM_SELF is valid.
        let rc = unsafe {
            ffi::MPI_Comm_spawn(
                cmd.as_ptr(),
                argv.as_mut_ptr(),
                n,
                minfo,
                0,
                ffi::RSMPI_COMM_SELF,
                &mut inter.0,
                codes.as_mut_ptr(),
            )
        };
        if !info.is_empty() {
            // SAFETY: the info object created above, freed once.
            unsafe { ffi::MPI_Info_free(&mut minfo) };
        }
        check("MPI_Comm_spawn", rc)?;
        if let Some(c) = codes.iter().find(|&&c| c != 0) {
            return Err(MpiError::Call {
                call: "MPI_Comm_spawn",
                code: *c,
                message: error_string(*c),
            });
        }
        Ok(inter)
    }

    /// Releases the communicator. `disconnect` waits for the other side
    /// to disconnect too (collective), so it is only asked for when every
    /// peer is known to be alive and leaving; otherwise the handle is
    /// freed locally.
    pub(crate) fn release(mut self, disconnect: bool) -> Result<(), MpiError> {
        let _g = live()?;
        if disconnect {
            // SAFETY: a valid intercommunicator, released once.
            check("MPI_Comm_disconnect", unsafe {
                ffi::MPI_Comm_disconnect(&mut self.0)
            })
        } else {
            // SAFETY: as above.
            check("MPI_Comm_free", unsafe { ffi::MPI_Comm_free(&mut self.0) })
        }
    }
}

/// This host's name as MPI reports it.
pub(crate) fn processor_name() -> String {
    let mut buf = vec![0 as c_char; 512];
    let mut len: c_int = 0;
    let _g = lock();
    if is_finalized() {
        return String::new();
    }
    // SAFETY: `buf` is larger than MPI_MAX_PROCESSOR_NAME (256 in OpenMPI,
    // 128 in MPICH) plus a terminator.
    let rc = unsafe { ffi::MPI_Get_processor_name(buf.as_mut_ptr(), &mut len) };
    if rc != 0 {
        return String::new();
    }
    // SAFETY: the call wrote a NUL-terminated string.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// A send in progress: the request and the buffer it reads, which must
/// live until the request completes.
#[derive(Debug)]
pub(crate) struct Send {
    req: ffi::MPI_Request,
    buf: Vec<u8>,
}

// SAFETY: the request handle is used only under `lock`; the buffer is
// owned.
unsafe impl std::marker::Send for Send {}

/// Starts sending `buf` to `dest` with `tag` (`MPI_Isend`).
pub(crate) fn isend(comm: Comm, dest: i32, tag: i32, buf: Vec<u8>) -> Result<Send, MpiError> {
    let count = c_int::try_from(buf.len())
        .map_err(|_| MpiError::Protocol(format!("a message of {} bytes", buf.len())))?;
    let _g = live()?;
    // SAFETY: a valid null request value.
    let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
    let ptr = buf.as_ptr() as *const c_void;
    // SAFETY: `buf` (moved into the returned `Send`, its heap storage
    // does not move) stays alive until the request completes or is
    // leaked; with count 0 the (dangling, non-null) pointer is not read.
    check("MPI_Isend", unsafe {
        ffi::MPI_Isend(ptr, count, ffi::RSMPI_UINT8_T, dest, tag, comm.0, &mut req)
    })?;
    Ok(Send { req, buf })
}

impl Send {
    /// Whether the send is complete (then the buffer is free).
    pub(crate) fn test(&mut self) -> Result<bool, MpiError> {
        test(&mut self.req)
    }

    /// Gives up on a send whose peer is gone: the buffer is leaked, since
    /// the library may still read it.
    pub(crate) fn abandon(self) {
        std::mem::forget(self.buf);
    }
}

fn test(req: &mut ffi::MPI_Request) -> Result<bool, MpiError> {
    let _g = live()?;
    let mut flag: c_int = 0;
    let mut st = std::mem::MaybeUninit::<ffi::MPI_Status>::zeroed();
    // SAFETY: `req` is a live request of this process; `st` is a valid
    // out-parameter.
    check("MPI_Test", unsafe {
        ffi::MPI_Test(req, &mut flag, st.as_mut_ptr())
    })?;
    Ok(flag != 0)
}

/// A receive in progress (`MPI_Imrecv` of a probed message).
#[derive(Debug)]
pub(crate) struct Recv {
    req: ffi::MPI_Request,
    buf: Vec<u8>,
    pub(crate) source: i32,
    pub(crate) tag: i32,
}

// SAFETY: as for `Send`.
unsafe impl std::marker::Send for Recv {}

impl Recv {
    /// The message, once the receive is complete.
    pub(crate) fn test(&mut self) -> Result<bool, MpiError> {
        test(&mut self.req)
    }

    pub(crate) fn into_data(self) -> Vec<u8> {
        self.buf
    }

    /// Gives up on a receive whose peer is gone (the buffer is leaked).
    pub(crate) fn abandon(self) {
        std::mem::forget(self.buf);
    }
}

/// Takes the next message from `source` (or any source when `None`), if one
/// has arrived, and starts receiving it (`MPI_Improbe` + `MPI_Imrecv`).
pub(crate) fn take_message(comm: Comm, source: Option<i32>) -> Result<Option<Recv>, MpiError> {
    let _g = live()?;
    let mut flag: c_int = 0;
    // SAFETY: valid constant reads.
    let mut msg = unsafe { ffi::RSMPI_MESSAGE_NULL };
    let mut st = std::mem::MaybeUninit::<ffi::MPI_Status>::zeroed();
    // SAFETY: as above.
    let src = source.unwrap_or(unsafe { ffi::RSMPI_ANY_SOURCE });
    // SAFETY: a valid communicator and out-parameters.
    check("MPI_Improbe", unsafe {
        ffi::MPI_Improbe(
            src,
            ffi::RSMPI_ANY_TAG,
            comm.0,
            &mut flag,
            &mut msg,
            st.as_mut_ptr(),
        )
    })?;
    if flag == 0 {
        return Ok(None);
    }
    // SAFETY: MPI_Improbe filled the status when it set the flag.
    let st = unsafe { st.assume_init() };
    let mut count: c_int = 0;
    // SAFETY: a status of a matched message.
    check("MPI_Get_count", unsafe {
        ffi::MPI_Get_count(&st, ffi::RSMPI_UINT8_T, &mut count)
    })?;
    let mut buf = vec![0u8; count.max(0) as usize];
    let ptr = buf.as_mut_ptr() as *mut c_void;
    // SAFETY: as above.
    let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
    // SAFETY: `msg` is the message just matched; `buf` has room for its
    // `count` bytes and stays alive (in the returned `Recv`, its heap
    // storage does not move) until the request completes or is leaked.
    check("MPI_Imrecv", unsafe {
        ffi::MPI_Imrecv(ptr, count, ffi::RSMPI_UINT8_T, &mut msg, &mut req)
    })?;
    Ok(Some(Recv {
        req,
        buf,
        source: st.MPI_SOURCE,
        tag: st.MPI_TAG,
    }))
}
