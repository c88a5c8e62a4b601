# mirrorctl disk recipe (Windows PowerShell 5.1+). Writes exactly one JSON document; a successful
# change carries the disk list it leaves (`disks`, as 'list' prints it).
# The generated script appends one line: `Invoke-Mirrorctl -Op <op> [-Serial ...] [...]`.
# Cmdlets: Get-Disk, Set-Disk, Get-Partition, Set-Partition, ConvertTo-Json.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Out-Result($obj) { ConvertTo-Json -InputObject $obj -Depth 6 -Compress }

# The disk whose serial is this volume id without its hyphen (a suffix such as `_00000001.` is allowed).
function Find-MirrorctlDisk([string]$Serial) {
    $found = @(Get-Disk | Where-Object { $_.SerialNumber -and ($_.SerialNumber.Trim() -match ('^' + $Serial + '([^0-9a-f]|$)')) })
    if ($found.Count -eq 0) { throw [System.IO.FileNotFoundException]::new("no disk with serial $Serial") }
    if ($found.Count -gt 1) { throw "more than one disk with serial $Serial" }
    return $found[0]
}

function Get-MirrorctlDisks {
    $disks = @(Get-Disk | ForEach-Object {
        $d = $_
        $parts = @()
        if (-not $d.IsOffline) {
            $parts = @(Get-Partition -DiskNumber $d.Number -ErrorAction SilentlyContinue | ForEach-Object {
                $letter = $null
                if ($_.DriveLetter -and [int][char]$_.DriveLetter -ne 0) { $letter = [string]$_.DriveLetter }
                @{ number = [int]$_.PartitionNumber; letter = $letter; path = $null; mounted = $false }
            })
        }
        $reason = $null
        if ($d.IsOffline -and $null -ne $d.OfflineReason) { $reason = [string]$d.OfflineReason }
        @{
            serial = [string]$d.SerialNumber
            number = [int]$d.Number
            online = -not $d.IsOffline
            read_only = [bool]$d.IsReadOnly
            boot = [bool]($d.IsBoot -or $d.IsSystem)
            offline_reason = $reason
            partitions = $parts
        }
    })
    return @{ disks = $disks }
}

function Set-MirrorctlOffline([string]$Serial) {
    $d = Find-MirrorctlDisk $Serial
    if ($d.IsOffline) { return @{ ok = $true; changed = $false; warnings = @() } }
    Set-Disk -Number $d.Number -IsOffline $true
    return @{ ok = $true; changed = $true; warnings = @() }
}

function Set-MirrorctlOnline([string]$Serial) {
    $d = Find-MirrorctlDisk $Serial
    $changed = $false
    if ($d.IsOffline) { Set-Disk -Number $d.Number -IsOffline $false; $changed = $true }
    # Clearing read-only is a separate call; read the disk again first.
    if ((Get-Disk -Number $d.Number).IsReadOnly) { Set-Disk -Number $d.Number -IsReadOnly $false; $changed = $true }
    return @{ ok = $true; changed = $changed; warnings = @() }
}

function Set-MirrorctlLetter([string]$Serial, [int]$Partition, [string]$Letter) {
    $d = Find-MirrorctlDisk $Serial
    $p = Get-Partition -DiskNumber $d.Number -PartitionNumber $Partition
    if ([string]$p.DriveLetter -eq $Letter) { return @{ ok = $true; changed = $false; warnings = @() } }
    Set-Partition -DiskNumber $d.Number -PartitionNumber $Partition -NewDriveLetter $Letter
    return @{ ok = $true; changed = $true; warnings = @() }
}

function Invoke-Mirrorctl([string]$Op, [string]$Serial, [int]$Partition, [string]$Letter) {
    try {
        switch ($Op) {
            'list' { $r = Get-MirrorctlDisks }
            'offline' { $r = Set-MirrorctlOffline $Serial }
            'online' { $r = Set-MirrorctlOnline $Serial }
            'letter' { $r = Set-MirrorctlLetter $Serial $Partition $Letter }
            default { throw "unknown operation $Op" }
        }
        # A change answers with the disks as it left them (read after the change, same shape as 'list').
        if ($Op -ne 'list') { $r['disks'] = @((Get-MirrorctlDisks).disks) }
        Out-Result $r
    } catch [System.IO.FileNotFoundException] {
        Out-Result @{ ok = $false; code = 'not_found'; message = $_.Exception.Message }
    } catch {
        Out-Result @{ ok = $false; code = 'failed'; message = $_.Exception.Message }
    }
}
