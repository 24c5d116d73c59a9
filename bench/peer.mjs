// The peer: panva's oidc-provider (v9) with one client_credentials client issuing JWT access
// tokens through resource indicators, as its documentation sets it up. Port from argv.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-bench-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  }],
  scopes: ['WRITE'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:tessera:bench',
      getResourceServerInfo: () => ({
        scope: 'WRITE',
        audience: 'urn:tessera:bench',
        accessTokenFormat: 'jwt',
        accessTokenTTL: 3600,
      }),
    },
  },
});
provider.listen(port, '127.0.0.1', () => console.log(`peer listening on ${port}`));
