# sessions.ps1: The signed-in sessions (WTS API) and the rule that a restart must not disconnect them unasked.

function Get-RdpSession {
    # Sessions with a signed-in user (id, user, state, client), from the WTS API; the caller's own
    # session id (0 over WinRM, SSH and Run Command). Never throws: an error is reported instead.
    [CmdletBinding()]
    param([int]$TimeoutSeconds = 15)
    $info = [ordered]@{ own = [System.Diagnostics.Process]::GetCurrentProcess().SessionId; count = 0; list = @(); error = $null }
    try {
        if ($null -eq ('RdpfixWts' -as [type])) {
            $source = @'
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
public class RdpfixWtsSession
{
    public int Id;
    public string Station;
    public string State;
    public string User;
    public string Client;
}
public static class RdpfixWts
{
    [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
    private struct SessionInfo
    {
        public int SessionId;
        public string WinStationName;
        public int State;
    }
    [DllImport("wtsapi32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
    private static extern bool WTSEnumerateSessionsW(IntPtr server, int reserved, int version, out IntPtr sessions, out int count);
    [DllImport("wtsapi32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
    private static extern bool WTSQuerySessionInformationW(IntPtr server, int sessionId, int infoClass, out IntPtr buffer, out int bytes);
    [DllImport("wtsapi32.dll")]
    private static extern void WTSFreeMemory(IntPtr memory);
    private static readonly string[] States = { "Active", "Connected", "ConnectQuery", "Shadow", "Disconnected", "Idle", "Listen", "Reset", "Down", "Init" };
    private static string Query(int id, int infoClass)
    {
        IntPtr buffer;
        int bytes;
        if (!WTSQuerySessionInformationW(IntPtr.Zero, id, infoClass, out buffer, out bytes)) return null;
        try { string text = Marshal.PtrToStringUni(buffer); return string.IsNullOrEmpty(text) ? null : text; }
        finally { WTSFreeMemory(buffer); }
    }
    private static List<RdpfixWtsSession> Enumerate()
    {
        IntPtr info;
        int count;
        if (!WTSEnumerateSessionsW(IntPtr.Zero, 0, 1, out info, out count)) throw new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error());
        List<RdpfixWtsSession> list = new List<RdpfixWtsSession>();
        try
        {
            int size = Marshal.SizeOf(typeof(SessionInfo));
            for (int i = 0; i < count; i++)
            {
                SessionInfo s = (SessionInfo)Marshal.PtrToStructure(new IntPtr(info.ToInt64() + (long)i * size), typeof(SessionInfo));
                string user = Query(s.SessionId, 5);
                string domain = Query(s.SessionId, 7);
                RdpfixWtsSession item = new RdpfixWtsSession();
                item.Id = s.SessionId;
                item.Station = s.WinStationName;
                item.State = (s.State >= 0 && s.State < States.Length) ? States[s.State] : s.State.ToString();
                item.User = (user == null) ? null : ((domain == null) ? user : domain + @"\" + user);
                item.Client = Query(s.SessionId, 10);
                list.Add(item);
            }
        }
        finally { WTSFreeMemory(info); }
        return list;
    }
    public static RdpfixWtsSession[] List(int timeoutMilliseconds)
    {
        Task<List<RdpfixWtsSession>> task = Task.Run(() => Enumerate());
        if (!task.Wait(timeoutMilliseconds)) throw new TimeoutException("the session list did not come back within " + (timeoutMilliseconds / 1000) + " s (TermService may be hung)");
        return task.Result.ToArray();
    }
}
'@
            Add-Type -TypeDefinition $source -Language CSharp
        }
        $signedIn = @([RdpfixWts]::List($TimeoutSeconds * 1000) | Where-Object -FilterScript { $_.User })
        $info.count = $signedIn.Count
        $info.list = @($signedIn | Select-Object -First 8 | ForEach-Object -Process { [ordered]@{ id = $_.Id; user = $_.User; state = $_.State; client = $_.Client; station = $_.Station } })
    } catch {
        $failure = $_.Exception
        while ($null -ne $failure.InnerException) { $failure = $failure.InnerException }
        $info.error = $failure.Message
    }
    return $info
}

function Test-RdpSessionBlock {
    # The rule rdpfix's restart-termserv sessionImpact re-checks: a restart of a running TermService
    # disconnects every session; any signed-in session other than the caller's, or a list that could
    # not be read, needs -DisconnectSessions. Returns the reason to refuse, or $null.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Sessions, [bool]$Running = $true)
    if (-not $Running) { return $null }
    if ($Sessions.error) { return ('the signed-in sessions could not be listed ({0}); a restart may disconnect users. Pass --force to restart anyway' -f $Sessions.error) }
    $others = @($Sessions.list | Where-Object -FilterScript { $_.id -ne $Sessions.own })
    $hidden = [Math]::Max(0, $Sessions.count - @($Sessions.list).Count)
    if ($others.Count -eq 0 -and $hidden -eq 0) { return $null }
    $names = @($others | ForEach-Object -Process { '{0} (session {1}, {2}{3})' -f $_.user, $_.id, $_.state, $(if ($_.client) { ', from ' + $_.client } else { '' }) })
    if ($hidden -gt 0) { $names += ('{0} more' -f $hidden) }
    return ('restarting TermService disconnects {0} session(s): {1}. Pass --force to restart anyway' -f ($others.Count + $hidden), ($names -join '; '))
}
