// Node-RED settings for the peer job benchmark (bench/peer_job.py): headless, no editor, no
// admin API, no HTTP endpoints, nothing installed at run time. The flows (flows.json) take
// the simulator's ports, the broker's port and the poll period from the environment
// (${PEER_...} properties), so this file and the flows stay as committed.
module.exports = {
    // no editor and no admin API; with httpNodeRoot false too, Node-RED opens no HTTP port
    httpAdminRoot: false,
    httpNodeRoot: false,
    // the flows hold no credentials: no key to generate (or to warn about at length); Node-RED
    // still logs one warning that credentials are not encrypted
    credentialSecret: false,
    // a measurement, not a debugging session: only warnings and errors on the console
    logging: {
        console: { level: "warn", metrics: false, audit: false }
    },
    // nothing fetched from npm while the bench runs
    externalModules: {
        autoInstall: false,
        palette: { allowInstall: false, allowUpdate: false, allowUpload: false },
        modules: { allowInstall: false }
    },
    functionExternalModules: false,
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false },
    // memory context (the default): the change detection keeps the last poll per unit there
    contextStorage: { default: { module: "memory" } },
    exportGlobalContextKeys: false
};
