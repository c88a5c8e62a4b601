# mirrorctl disk recipe (Linux, POSIX sh). Prints exactly one JSON document on stdout; a successful
# change carries the disk list it leaves (`disks`, as `list` prints it).
# The generated script appends one line: `mirrorctl_main <op> [serial]`.
# External commands can be replaced through MIRRORCTL_* variables (tests use fakes).
LSBLK=${MIRRORCTL_LSBLK:-lsblk}
FINDMNT=${MIRRORCTL_FINDMNT:-findmnt}
BLOCKDEV=${MIRRORCTL_BLOCKDEV:-blockdev}
PARTPROBE=${MIRRORCTL_PARTPROBE:-partprobe}
SYNC=${MIRRORCTL_SYNC:-sync}
UDEVADM=${MIRRORCTL_UDEVADM:-udevadm}
BYID=${MIRRORCTL_BYID_DIR:-/dev/disk/by-id}
BYID_PREFIX=nvme-Amazon_Elastic_Block_Store_
# Where links to partitions are looked for (their other names, e.g. /dev/xvdb2 on Nitro).
LINK_DIRS=${MIRRORCTL_LINK_DIRS:-/dev /dev/disk/by-id /dev/disk/by-partuuid /dev/disk/by-uuid /dev/disk/by-label}

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

fail() { # code message
  printf '{"ok":false,"code":%s,"message":%s}\n' "$(json_str "$1")" "$(json_str "$2")"
  exit 0
}

# Value of KEY in one `lsblk -P` line.
field() { printf ' %s\n' "$2" | sed -n "s/.*[[:space:]]$1=\"\([^\"]*\)\".*/\1/p"; }

# lsblk is read once per run, in mirrorctl_main.
blocks() { printf '%s\n' "$LSBLK_OUT"; }

# Device path of the disk with this serial: by-id link first, then lsblk's SERIAL.
find_disk() {
  link="$BYID/$BYID_PREFIX$1"
  if [ -L "$link" ]; then
    printf '/dev/%s\n' "$(basename "$(readlink "$link")")"
    return 0
  fi
  blocks | while IFS= read -r line; do
    if [ "$(field TYPE "$line")" = disk ] && [ "$(field SERIAL "$line")" = "$1" ]; then
      field NAME "$line"
      break
    fi
  done
}

# JSON array of the links in LINK_DIRS that resolve to this device.
aliases() { # device
  out=''; asep=''
  for dir in $LINK_DIRS; do
    for l in "$dir"/*; do
      [ -L "$l" ] || continue
      [ "$(readlink -f "$l" 2>/dev/null)" = "$1" ] || continue
      out="$out$asep$(json_str "$l")"; asep=','
    done
  done
  printf '[%s]' "$out"
}

partnum() { expr "$1" : '.*[^0-9]\([0-9][0-9]*\)$'; }

is_mounted() { # device
  [ -n "$(blocks | while IFS= read -r l; do [ "$(field NAME "$l")" = "$1" ] && field MOUNTPOINT "$l"; done)" ] && return 0
  $FINDMNT -rn -S "$1" >/dev/null 2>&1
}

# JSON array of the disks (lsblk as last read).
disk_array() {
  out='['
  sep=''
  index=0
  tmp=$(blocks)
  for disk in $(printf '%s\n' "$tmp" | while IFS= read -r l; do [ "$(field TYPE "$l")" = disk ] && field NAME "$l"; done); do
    line=$(printf '%s\n' "$tmp" | while IFS= read -r l; do [ "$(field NAME "$l")" = "$disk" ] && printf '%s\n' "$l"; done)
    serial=$(field SERIAL "$line")
    ro=false; [ "$(field RO "$line")" = 1 ] && ro=true
    boot=false; [ "$(field MOUNTPOINT "$line")" = / ] && boot=true
    parts=''; psep=''
    for p in $(printf '%s\n' "$tmp" | while IFS= read -r l; do [ "$(field PKNAME "$l")" = "$disk" ] && [ "$(field TYPE "$l")" = part ] && field NAME "$l"; done); do
      pl=$(printf '%s\n' "$tmp" | while IFS= read -r l; do [ "$(field NAME "$l")" = "$p" ] && printf '%s\n' "$l"; done)
      mnt=$(field MOUNTPOINT "$pl")
      mounted=false; [ -n "$mnt" ] && mounted=true
      [ "$mnt" = / ] && boot=true
      parts="$parts$psep{\"number\":$(partnum "$p"),\"path\":$(json_str "$p"),\"letter\":null,\"mounted\":$mounted,\"aliases\":$(aliases "$p")}"
      psep=','
    done
    out="$out$sep{\"serial\":$(json_str "$serial"),\"number\":$index,\"online\":true,\"read_only\":$ro,\"boot\":$boot,\"offline_reason\":null,\"partitions\":[$parts]}"
    sep=','
    index=$((index + 1))
  done
  printf '%s]' "$out"
}

op_list() { printf '{"disks":%s}\n' "$(disk_array)"; }

op_offline() { # serial
  disk=$(find_disk "$1")
  [ -n "$disk" ] || fail not_found "no disk with serial $1"
  busy=''
  for dev in "$disk" $(blocks | while IFS= read -r l; do [ "$(field PKNAME "$l")" = "$disk" ] && field NAME "$l"; done); do
    if is_mounted "$dev"; then busy="$busy $dev"; fi
  done
  [ -z "$busy" ] || fail mounted "mounted:$busy"
  $SYNC || fail failed "sync failed"
  $BLOCKDEV --flushbufs "$disk" || fail failed "blockdev --flushbufs $disk failed"
  printf '{"ok":true,"changed":true,"warnings":[],"disks":%s}\n' "$(disk_array)"
}

op_online() { # serial
  disk=$(find_disk "$1")
  [ -n "$disk" ] || fail not_found "no disk with serial $1"
  warnings=''
  $PARTPROBE "$disk" >/dev/null 2>&1 || warnings=$(json_str "partprobe $disk failed")
  # The answer lists the partitions with their other names: let udev finish making the links first.
  $UDEVADM settle --timeout=10 >/dev/null 2>&1 || warnings="$warnings${warnings:+,}$(json_str "udevadm settle failed")"
  # The partition table was re-read: list what the kernel shows now.
  LSBLK_OUT=$($LSBLK -P -p -o NAME,SERIAL,TYPE,MOUNTPOINT,PKNAME,RO 2>/dev/null) || fail failed "lsblk failed"
  printf '{"ok":true,"changed":false,"warnings":[%s],"disks":%s}\n' "$warnings" "$(disk_array)"
}

mirrorctl_main() {
  LSBLK_OUT=$($LSBLK -P -p -o NAME,SERIAL,TYPE,MOUNTPOINT,PKNAME,RO 2>/dev/null) || fail failed "lsblk failed"
  case "$1" in
    list) op_list ;;
    offline) op_offline "$2" ;;
    online) op_online "$2" ;;
    *) fail failed "unknown operation $1" ;;
  esac
}
