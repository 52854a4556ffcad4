//! Link libdlsched as pkg-config describes it: `-L` directories become
//! rustc-link-search, `-l` names rustc-link-lib, and the pc file's libdir
//! becomes the binary's run path, so it runs without LD_LIBRARY_PATH.
//! Point PKG_CONFIG_PATH at the directory holding dlsched.pc (an install's
//! <prefix>/lib/pkgconfig, or build/ffi/pkgconfig written by
//! scripts/ffi-examples.sh for the library built in the source tree).

use std::env;
use std::process::Command;

fn pkg_config(args: &[&str]) -> String {
    let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let shown = format!("{} {} dlsched", program, args.join(" "));
    let out = match Command::new(&program).args(args).arg("dlsched").output() {
        Ok(out) => out,
        Err(e) => panic!(
            "\n\ncould not run `{}`: {}\n\
             install pkg-config (Debian: apt-get install pkg-config), or set PKG_CONFIG \
             to the pkg-config program\n\n",
            shown, e
        ),
    };
    if !out.status.success() {
        panic!(
            "\n\n`{}` failed ({}):\n{}\n\
             pkg-config did not find libdlsched's dlsched.pc. Set PKG_CONFIG_PATH to the \
             directory that holds it, e.g.\n    \
             PKG_CONFIG_PATH=/usr/local/lib/pkgconfig   (after `make install`)\n    \
             PKG_CONFIG_PATH=$PWD/build/ffi/pkgconfig   (the source tree: run \
             `bash scripts/ffi-examples.sh`, which writes it)\n\
             PKG_CONFIG_PATH is now: {:?}\n\n",
            shown,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end(),
            env::var("PKG_CONFIG_PATH").unwrap_or_default()
        );
    }
    match String::from_utf8(out.stdout) {
        Ok(s) => s,
        Err(_) => panic!("`{}` printed something that is not UTF-8", shown),
    }
}

fn main() {
    for var in [
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={}", var);
    }
    println!("cargo:rerun-if-changed=build.rs");

    let libs = pkg_config(&["--libs-only-L", "--libs-only-l"]);
    let mut linked = false;
    for flag in libs.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={}", dir);
        } else if let Some(name) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={}", name);
            linked |= name == "dlsched";
        } else {
            panic!(
                "unexpected flag {:?} from pkg-config --libs-only-L --libs-only-l dlsched",
                flag
            );
        }
    }
    if !linked {
        panic!(
            "pkg-config --libs dlsched has no -ldlsched: {:?}",
            libs.trim()
        );
    }

    let libdir = pkg_config(&["--variable=libdir"]);
    let libdir = libdir.trim();
    if !libdir.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", libdir);
    }
}
