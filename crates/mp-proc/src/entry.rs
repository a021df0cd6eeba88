//! Entry points: how a function of this executable is named across
//! processes.
//!
//! Targets (and the fork server's preload) are found by their offset from
//! [`anchor`], a function in this crate: the executable is mapped at a
//! random address in each process (ASLR), but the distance between two
//! functions in it is the same. An offset that does not land in the
//! executable's own code is refused.

use std::sync::OnceLock;

/// The function every target offset is measured from.
#[inline(never)]
pub(crate) fn anchor() -> usize {
    std::hint::black_box(0x6d70_616e_6368_6f72)
}

fn anchor_addr() -> usize {
    anchor as fn() -> usize as usize
}

/// Offset of a code address from the anchor.
pub(crate) fn offset_of(addr: usize) -> i64 {
    addr as i64 - anchor_addr() as i64
}

/// The code address at `offset` from the anchor, if it lies in this
/// executable's code.
pub(crate) fn addr_at(offset: i64) -> Option<usize> {
    let addr = (anchor_addr() as i64).checked_add(offset)?;
    let addr = usize::try_from(addr).ok()?;
    in_executable_code(addr).then_some(addr)
}

/// Whether `addr` is inside an executable segment of the main program (not
/// a shared library loaded at a per-process address).
pub(crate) fn in_executable_code(addr: usize) -> bool {
    static RANGES: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
    RANGES
        .get_or_init(exec_ranges)
        .iter()
        .any(|&(lo, hi)| addr >= lo && addr < hi)
}

fn exec_ranges() -> Vec<(usize, usize)> {
    unsafe extern "C" fn callback(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> i32 {
        // SAFETY: `data` is the `&mut Vec` passed to dl_iterate_phdr below,
        // and `info` is valid for the duration of the callback.
        let (out, info) = unsafe { (&mut *data.cast::<Vec<(usize, usize)>>(), &*info) };
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
                let lo = info.dlpi_addr as usize + ph.p_vaddr as usize;
                out.push((lo, lo + ph.p_memsz as usize));
            }
        }
        1 // the first object is the main program: stop there
    }
    let mut out: Vec<(usize, usize)> = Vec::new();
    // Raw libc: rustix has no dl_iterate_phdr (a C library function).
    // SAFETY: the callback only reads the headers it is given and writes
    // to `out`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(callback),
            (&mut out as *mut Vec<(usize, usize)>).cast(),
        )
    };
    out
}
