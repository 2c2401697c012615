// @trpc/client v11 against a running Sluice.
import { createTRPCClient, httpBatchLink, httpBatchStreamLink, httpLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';

import { contract } from '../contract.mjs';

const links = { httpLink, httpBatchLink, httpBatchStreamLink };

contract({
  version: 11,
  links: Object.keys(links),
  TRPCClientError,
  client(link, { token, superjson: useSuperjson }) {
    return createTRPCClient({
      links: [
        links[link]({
          url: process.env.SLUICE_TRPC_URL,
          headers: () => (token ? { authorization: `Bearer ${token}` } : {}),
          ...(useSuperjson ? { transformer: superjson } : {}),
        }),
      ],
    });
  },
});
