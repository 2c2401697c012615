// @trpc/client v10 against a running Sluice.
import {
  createTRPCProxyClient,
  httpBatchLink,
  httpLink,
  TRPCClientError,
  unstable_httpBatchStreamLink,
} from '@trpc/client';
import superjson from 'superjson';

import { contract } from '../contract.mjs';

const links = { httpLink, httpBatchLink, httpBatchStreamLink: unstable_httpBatchStreamLink };

contract({
  version: 10,
  links: Object.keys(links),
  TRPCClientError,
  client(link, { token, superjson: useSuperjson }) {
    return createTRPCProxyClient({
      ...(useSuperjson ? { transformer: superjson } : {}),
      links: [
        links[link]({
          url: process.env.SLUICE_TRPC_URL,
          headers: () => (token ? { authorization: `Bearer ${token}` } : {}),
        }),
      ],
    });
  },
});
