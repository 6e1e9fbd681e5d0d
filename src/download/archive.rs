//! A directory as a `.tar.gz`, produced while it is sent.
//!
//! The archive is written by a blocking task into a bounded channel that
//! feeds the response body, so memory stays at a few chunks whatever the size
//! of the tree, and a client that goes away stops the walk (the next send
//! fails). Entry names are relative to the requested directory, as in
//! Backrest's archives. The walk never follows a symbolic link: a link is
//! stored as a link, so nothing outside the directory gets into the archive.
//! Sockets, FIFOs and devices are left out (reading a FIFO could block
//! forever). A failure half way aborts the response instead of ending it
//! normally, so the client sees a broken download, never a short archive
//! that looks complete.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{Builder, EntryType, Header, HeaderMode};
use tokio::sync::mpsc;

/// Size of the pieces sent to the client, and the channel depth: at most
/// `CHUNK * (DEPTH + 1)` bytes of archive wait in memory.
const CHUNK: usize = 64 * 1024;
const DEPTH: usize = 4;

/// The body of a `.tar.gz` of `dir` (an already resolved, real directory).
pub fn tar_gz_stream(dir: PathBuf) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(DEPTH);
    tokio::task::spawn_blocking(move || {
        let sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = write_tar_gz(&dir, sink) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                tracing::debug!(
                    "download of {} stopped: the client went away",
                    dir.display()
                );
            } else {
                tracing::warn!("download of {} failed: {e}", dir.display());
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    rx
}

/// Writes the gzip-compressed tar of everything below `dir` into `out`.
pub fn write_tar_gz<W: Write>(dir: &Path, out: W) -> io::Result<W> {
    // Fastest level, as Backrest: restored files are often already compressed.
    let mut tar = Builder::new(GzEncoder::new(out, Compression::fast()));
    append_tree(&mut tar, dir)?;
    let mut out = tar.into_inner()?.finish()?;
    out.flush()?;
    Ok(out)
}

fn append_tree<W: Write>(tar: &mut Builder<W>, dir: &Path) -> io::Result<()> {
    // Depth first, names sorted, so the same tree gives the same archive.
    let mut stack: Vec<PathBuf> = sorted_children(dir, Path::new(""))?;
    stack.reverse();
    while let Some(rel) = stack.pop() {
        let full = dir.join(&rel);
        let meta = std::fs::symlink_metadata(&full)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            let mut h = header_for(&meta, EntryType::Directory);
            tar.append_data(&mut h, &rel, io::empty())?;
            let mut children = sorted_children(&full, &rel)?;
            children.reverse();
            stack.extend(children);
        } else if kind.is_symlink() {
            let link = std::fs::read_link(&full)?;
            let mut h = header_for(&meta, EntryType::Symlink);
            tar.append_link(&mut h, &rel, link)?;
        } else if kind.is_file() {
            let Some((file, meta)) = open_regular(&full)? else {
                continue;
            };
            let mut h = header_for(&meta, EntryType::Regular);
            h.set_size(meta.len());
            let body = ExactLen {
                inner: file.take(meta.len()),
                left: meta.len(),
                path: &full,
            };
            tar.append_data(&mut h, &rel, body)?;
        } else {
            tracing::debug!(
                "not archiving {} (not a file, directory or link)",
                full.display()
            );
        }
    }
    Ok(())
}

fn sorted_children(dir: &Path, rel: &Path) -> io::Result<Vec<PathBuf>> {
    let mut names = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names.into_iter().map(|n| rel.join(n)).collect())
}

fn header_for(meta: &Metadata, kind: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_metadata_in_mode(meta, HeaderMode::Complete);
    h.set_entry_type(kind);
    h.set_size(0);
    h
}

/// Opens `path` without following a link and without blocking on a FIFO
/// swapped in since it was listed; `None` when it is no longer a regular file.
pub fn open_regular(path: &Path) -> io::Result<Option<(File, Metadata)>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        // ELOOP: it became a symbolic link.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    Ok(meta.is_file().then_some((file, meta)))
}

/// Reads exactly the length announced in the entry's header: a file that
/// shrank while being archived is an error, not a corrupt archive.
struct ExactLen<'a, R> {
    inner: R,
    left: u64,
    path: &'a Path,
}

impl<R: Read> Read for ExactLen<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was being archived", self.path.display()),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hands the archive to the response body in `CHUNK`-sized pieces.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn entries(targz: &[u8]) -> Vec<(String, EntryType, Vec<u8>, Option<String>)> {
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(targz));
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let kind = e.header().entry_type();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned());
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (name, kind, data, link)
            })
            .collect()
    }

    #[test]
    fn archives_files_dirs_and_links_without_following() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("d");
        std::fs::create_dir_all(d.join("sub/empty")).unwrap();
        std::fs::write(d.join("b.txt"), "bee").unwrap();
        std::fs::write(d.join("sub/a.txt"), "ay").unwrap();
        std::fs::write(tmp.path().join("secret"), "outside").unwrap();
        symlink(tmp.path().join("secret"), d.join("link-out")).unwrap();
        symlink(tmp.path(), d.join("dir-out")).unwrap();
        let long = "n".repeat(150);
        std::fs::write(d.join(&long), "long name").unwrap();
        unsafe {
            let fifo = std::ffi::CString::new(d.join("fifo").to_str().unwrap()).unwrap();
            assert_eq!(libc::mkfifo(fifo.as_ptr(), 0o600), 0);
        }

        let got = entries(&write_tar_gz(&d, Vec::new()).unwrap());
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "b.txt",
                "dir-out",
                "link-out",
                long.as_str(),
                "sub",
                "sub/a.txt",
                "sub/empty"
            ]
        );
        let by = |n: &str| got.iter().find(|e| e.0 == n).unwrap();
        assert_eq!(by("b.txt").2, b"bee");
        assert_eq!(by("sub/a.txt").2, b"ay");
        assert_eq!(by(&long).2, b"long name");
        assert_eq!(by("sub").1, EntryType::Directory);
        let out = by("link-out");
        assert_eq!(out.1, EntryType::Symlink);
        assert!(out.2.is_empty(), "a link carries no file contents");
        assert_eq!(
            out.3.as_deref(),
            Some(tmp.path().join("secret").to_str().unwrap())
        );
        assert_eq!(by("dir-out").1, EntryType::Symlink);
        assert!(!names.iter().any(|n| n.contains("secret")));
    }

    #[test]
    fn a_short_read_is_an_error() {
        let data: &[u8] = b"abc";
        let mut r = ExactLen {
            inner: data,
            left: 5,
            path: Path::new("f"),
        };
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn streams_a_large_file_in_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        // Incompressible data, several chunks' worth.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..(CHUNK * 8))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(tmp.path().join("big"), &noise).unwrap();
        let mut rx = tar_gz_stream(tmp.path().to_path_buf());
        let mut all = Vec::new();
        let mut pieces = 0;
        while let Some(chunk) = rx.recv().await {
            all.extend_from_slice(&chunk.unwrap());
            pieces += 1;
        }
        assert!(pieces > 4, "{pieces} pieces");
        assert_eq!(entries(&all)[0].2, noise);
    }

    #[test]
    fn a_gone_reader_stops_the_writer() {
        let (tx, rx) = mpsc::channel(DEPTH);
        drop(rx);
        let mut w = ChannelWriter {
            tx,
            buf: Vec::new(),
        };
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), "x").unwrap();
        let err = write_tar_gz(tmp.path(), &mut w)
            .err()
            .expect("a gone reader is an error");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
