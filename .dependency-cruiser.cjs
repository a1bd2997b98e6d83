/**
 * Import rules: arrows point down only (cli -> server -> library -> native
 * binding). `npm run lint` runs `depcruise` with these rules.
 *
 *   src/            the library (index, io, batcher, errors, native loader, ...)
 *   src/server/     the HTTP server, on the library
 *   src/bench/      the benchmark harness `rabitq bench` runs, on the library
 *   src/cli/        the `rabitq` command, on all of the above
 *   bench/, datasets/, test/   repository scripts and tests: may import src/, never the reverse
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'library-stays-below',
      comment: 'The library (src/ outside cli, server and bench) never imports the layers built on it.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(cli|server|bench)/' },
      to: { path: '^src/(cli|server|bench)/' },
    },
    {
      name: 'server-below-cli',
      comment: 'The server is used by the CLI (and `rabitq/server`); it uses neither the CLI nor the bench harness.',
      severity: 'error',
      from: { path: '^src/server/' },
      to: { path: '^src/(cli|bench)/' },
    },
    {
      name: 'bench-harness-below-cli',
      comment:
        'The bench harness is run by the CLI; from the CLI it takes only its shared plumbing: the CliIo type (src/cli/io.ts) and the bad-input error (src/cli/errors.ts).',
      severity: 'error',
      from: { path: '^src/bench/' },
      to: { path: '^src/(server/|cli/(?!(io|errors)\\.ts$))' },
    },
    {
      name: 'shipped-code-stays-in-src',
      comment: 'Nothing in src/ (what the package ships) imports the repository scripts, datasets or tests.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(bench|datasets|test)/' },
    },
    {
      name: 'no-circular',
      comment: 'No import cycles (type-only imports count).',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'Every import resolves.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|build|node_modules|native|bench/results)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
    },
  },
};
