//! The Raspberry Pi 4 SD-card folder: `kernel8.img`, the initrd if any, `config.txt`,
//! `cmdline.txt` and a `README.txt` for the person who copies it to a card. Also reads such
//! a folder back for `cargo xtask run --board rpi4 --image DIR`. Not the firmware files
//! themselves: those are the Raspberry Pi Foundation's, and the README says where to get them.

use std::path::{Path, PathBuf};

use crate::{Error, Result, kernel};

/// Kernel file name the firmware loads for a 64-bit kernel.
pub const KERNEL_FILE: &str = "kernel8.img";
/// Name the initrd gets in the folder.
pub const INITRD_FILE: &str = "initramfs.cpio";
/// Command line written when `--bootargs` is not given.
pub const DEFAULT_CMDLINE: &str = "loglevel=info";

/// `config.txt` for the Pi firmware, each setting explained.
pub fn config_txt(with_initrd: bool) -> String {
    let mut text = String::from(
        "# armach on the Raspberry Pi 4: settings for the Pi firmware (start4.elf).\n\
         # Start the cores in 64-bit mode, so the firmware hands our kernel an AArch64 CPU.\n\
         arm_64bit=1\n\
         # Turn on the mini UART on GPIO 14/15; the device tree's console (serial1) is that UART.\n\
         enable_uart=1\n\
         # The file holding our kernel: an arm64 Linux-style Image, device tree address in x0.\n\
         kernel=kernel8.img\n",
    );
    if with_initrd {
        text.push_str(
            "# Load the user programs (a cpio archive) right after the kernel and tell the kernel\n\
             # where they are through the device tree's /chosen node.\n\
             initramfs initramfs.cpio followkernel\n",
        );
    }
    text.push_str(
        "# Let the firmware report its own progress on the same UART before the kernel starts.\n\
         uart_2ndstage=1\n\
         # Keep the core clock from dropping below 500 MHz: the mini UART's baud rate is derived\n\
         # from it, so a moving clock would garble the console.\n\
         core_freq_min=500\n",
    );
    text
}

/// `README.txt`: what to add to the folder and how to watch the console.
pub fn readme_txt(with_initrd: bool) -> String {
    let initrd = if with_initrd {
        format!("  {INITRD_FILE:<16} the user programs (cpio archive) the kernel starts\n")
    } else {
        String::new()
    };
    format!(
        "armach for the Raspberry Pi 4 Model B
======================================

This folder holds our part of a bootable SD card:

  {KERNEL_FILE:<16} the armach kernel
{initrd}  config.txt       settings for the Pi firmware (read the comments inside)
  cmdline.txt      the kernel command line, one line

The Pi cannot start from these alone: it needs the Raspberry Pi Foundation's firmware.

1. Format an SD card with one FAT32 partition (MBR partition table).
2. Copy every file of this folder to the card's top level.
3. From the boot/ folder of https://github.com/raspberrypi/firmware (the master branch),
   copy to the card's top level as well:
     start4.elf            the firmware that runs on the GPU and loads the kernel
     fixup4.dat            its memory-layout companion
     bcm2711-rpi-4-b.dtb   the Pi 4 device tree, which the firmware passes to the kernel
   Optionally also the overlays/ folder, if you want to use dtoverlay= lines.
   (bootcode.bin is not needed: the Pi 4 boots from its EEPROM.)
4. Put the card in the Pi and power it.

Serial console (the kernel prints everything there; nothing appears on HDMI):
  Use a 3.3 V USB-serial adapter (never a 5 V one: it damages the Pi). Connect
    adapter GND -> Pi pin 6 (GND)
    adapter RX  -> Pi pin 8 (GPIO14, the Pi's TX)
    adapter TX  -> Pi pin 10 (GPIO15, the Pi's RX)
  and open the adapter at 115200 baud, 8 data bits, no parity, 1 stop bit (115200 8N1),
  for example: picocom -b 115200 /dev/ttyUSB0   or   screen /dev/ttyUSB0 115200

To change the kernel command line, edit cmdline.txt (one line).
To try this folder under QEMU first: cargo xtask run --board rpi4 --image <this folder>
"
    )
}

/// Writes the folder.
pub fn write_image_dir(
    out: &Path,
    image: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
) -> Result<()> {
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = out.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| Error::io(format_args!("writing {}", path.display()), e))
    };
    std::fs::create_dir_all(out)
        .map_err(|e| Error::io(format_args!("creating {}", out.display()), e))?;
    write(KERNEL_FILE, &kernel::read_image(image)?)?;
    if let Some(initrd) = initrd {
        let bytes = std::fs::read(initrd)
            .map_err(|e| Error::io(format_args!("reading {}", initrd.display()), e))?;
        write(INITRD_FILE, &bytes)?;
    } else {
        // A stale initrd from an earlier run would not be named in config.txt; drop it.
        let _ = std::fs::remove_file(out.join(INITRD_FILE));
    }
    write("config.txt", config_txt(initrd.is_some()).as_bytes())?;
    write("cmdline.txt", format!("{}\n", one_line(cmdline)).as_bytes())?;
    write("README.txt", readme_txt(initrd.is_some()).as_bytes())?;
    Ok(())
}

/// The firmware reads only the first line of cmdline.txt.
fn one_line(cmdline: &str) -> String {
    cmdline.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The initrd file named by an `initramfs <file> [address|followkernel]` line.
pub fn initrd_from_config(config: &str) -> Option<String> {
    config.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        (words.next() == Some("initramfs"))
            .then(|| words.next().map(str::to_owned))
            .flatten()
    })
}

/// The files of a folder made by [`write_image_dir`].
pub struct ImageDir {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
}

/// Reads an SD-card folder back, checking that what it names is there.
pub fn read_image_dir(dir: &Path) -> Result<ImageDir> {
    let kernel_path = dir.join(KERNEL_FILE);
    kernel::read_image(&kernel_path)?;
    let config_path = dir.join("config.txt");
    let config = std::fs::read_to_string(&config_path)
        .map_err(|e| Error::io(format_args!("reading {}", config_path.display()), e))?;
    let initrd = match initrd_from_config(&config) {
        Some(name) => {
            let path = dir.join(&name);
            if !path.is_file() {
                return Err(Error::new(format!(
                    "{} names initramfs {name}, which is not in {}",
                    config_path.display(),
                    dir.display()
                )));
            }
            Some(path)
        }
        None => None,
    };
    let cmdline_path = dir.join("cmdline.txt");
    let cmdline = match std::fs::read_to_string(&cmdline_path) {
        Ok(text) => text.lines().next().unwrap_or("").trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Error::io(
                format_args!("reading {}", cmdline_path.display()),
                e,
            ));
        }
    };
    Ok(ImageDir {
        kernel: kernel_path,
        initrd,
        cmdline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    }

    #[test]
    fn config_without_initrd() {
        let text = config_txt(false);
        assert_eq!(
            settings(&text),
            [
                "arm_64bit=1",
                "enable_uart=1",
                "kernel=kernel8.img",
                "uart_2ndstage=1",
                "core_freq_min=500"
            ]
        );
        // Every setting has its own comment line just before it.
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.starts_with('#'))
        {
            assert!(
                i > 0 && lines[i - 1].starts_with('#'),
                "no comment before {line}"
            );
        }
        assert_eq!(initrd_from_config(&text), None);
    }

    #[test]
    fn config_with_initrd() {
        let text = config_txt(true);
        assert!(settings(&text).contains(&"initramfs initramfs.cpio followkernel"));
        assert_eq!(initrd_from_config(&text).as_deref(), Some(INITRD_FILE));
        assert_eq!(
            initrd_from_config("initramfs  boot.cpio 0x2000000 # mine\n").as_deref(),
            Some("boot.cpio")
        );
        assert!(readme_txt(true).contains(INITRD_FILE));
    }

    #[test]
    fn readme_names_firmware_and_wiring() {
        let text = readme_txt(false);
        for needle in [
            "start4.elf",
            "fixup4.dat",
            "bcm2711-rpi-4-b.dtb",
            "overlays/",
            "FAT32",
            "pin 8",
            "pin 10",
            "pin 6",
            "3.3 V",
            "115200 8N1",
        ] {
            assert!(text.contains(needle), "README lacks {needle}");
        }
    }

    #[test]
    fn cmdline_is_one_line() {
        assert_eq!(
            one_line("loglevel=info\n  halt-after=boot\n"),
            "loglevel=info halt-after=boot"
        );
    }
}
